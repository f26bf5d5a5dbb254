// Randomness seam: key material, nonces, ids and tokens all come from a Random passed in.
#pragma once

#include <cstddef>
#include <string>

namespace custos {

class Random {
 public:
  virtual ~Random() = default;
  // Returns `n` random bytes. Thread-safe. Aborts if the system CSPRNG fails (nothing safe to do).
  virtual std::string Bytes(size_t n) = 0;
};

}  // namespace custos
