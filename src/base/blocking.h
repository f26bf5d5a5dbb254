// Threads that must not wait: an Asio I/O thread running the start of a route
// (http::RouteOptions::start_on_io_thread) never blocks on a disk, the network or a lock held
// across either (DESIGN.md, Threads). Code that would wait so (a store's reads and writes, the
// unwrapping of a key) checks MayBlock() first and returns WouldBlockError() instead; whoever
// started the work then hands it, from its beginning, to a thread that may block.
#pragma once

#include "absl/status/status.h"

namespace custos {

// Marks the calling thread as one that must not block, for the scope's lifetime.
class NonBlockingScope {
 public:
  NonBlockingScope();
  ~NonBlockingScope();
  NonBlockingScope(const NonBlockingScope&) = delete;
  NonBlockingScope& operator=(const NonBlockingScope&) = delete;

 private:
  bool outer_;  // the flag as the scope found it (scopes nest)
};

// False inside a NonBlockingScope.
bool MayBlock();

// What a call that would have blocked returns: kUnavailable, marked so that IsWouldBlock tells
// it from an outage (were it ever answered, it would read as a 503 "unavailable").
absl::Status WouldBlockError();
bool IsWouldBlock(const absl::Status& status);

}  // namespace custos
