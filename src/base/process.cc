#include "base/process.h"

#include <malloc.h>
#include <sys/resource.h>

namespace custos {

bool ConfigureProcess() {
  // Called first thing in main, before any other thread exists.
  return mallopt(M_TRIM_THRESHOLD, kRetainedHeapBytes) == 1;  // NOLINT(concurrency-mt-unsafe)
}

long RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return static_cast<long>(limit.rlim_cur);
}

}  // namespace custos
