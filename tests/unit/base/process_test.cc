#include "base/process.h"

#include <malloc.h>

#include <cstdlib>
#include <vector>

#include "gtest/gtest.h"

namespace custos {
namespace {

TEST(ConfigureProcess, FreedHeapMemoryIsKeptNotReturnedToTheKernel) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizer's allocator replaces glibc malloc (and refuses mallopt)";
#endif
  ASSERT_TRUE(ConfigureProcess());
  // 8 MiB in blocks below the mmap threshold, so they come from the heap, then all freed: the
  // heap's top now holds them, and is kept (under the default 128 KiB threshold it would be
  // trimmed back at once).
  std::vector<void*> blocks;
  for (int i = 0; i < 2048; ++i) blocks.push_back(std::malloc(4096));
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) std::free(*it);
  EXPECT_GE(mallinfo2().keepcost, size_t{4} << 20);
}

}  // namespace
}  // namespace custos
