#include "base/process.h"

#include <malloc.h>

namespace custos {

bool ConfigureProcess() { return mallopt(M_TRIM_THRESHOLD, kRetainedHeapBytes) == 1; }

}  // namespace custos
