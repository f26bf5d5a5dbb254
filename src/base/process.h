// Process-wide settings that every Custos binary makes once, first thing in main().
#pragma once

namespace custos {

// glibc malloc hands the free memory at the top of a thread's heap back to the kernel as soon
// as it exceeds 128 KiB (madvise), and every such return interrupts all the CPUs running the
// process to flush their TLBs. A server that frees request bodies and responses on other
// threads than the ones that allocated them did that constantly: 3-7% of a PUT load's CPU was
// smp_call_function_many_cond under madvise. Each heap now keeps up to kRetainedHeapBytes.
// Returns false if malloc refused the setting (not glibc's).
bool ConfigureProcess();

inline constexpr int kRetainedHeapBytes = 16 << 20;

// A server holds a file descriptor per connection (and SQLite several per cell); the usual soft
// limit (1024) would cap connections far below what the machine allows. Raises the soft limit
// of open files to the hard one; returns the soft limit now in force (0 if unknown).
long RaiseOpenFileLimit();

}  // namespace custos
