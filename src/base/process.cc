#include "base/process.h"

#include <malloc.h>

namespace custos {

bool ConfigureProcess() {
  // Called first thing in main, before any other thread exists.
  return mallopt(M_TRIM_THRESHOLD, kRetainedHeapBytes) == 1;  // NOLINT(concurrency-mt-unsafe)
}

}  // namespace custos
