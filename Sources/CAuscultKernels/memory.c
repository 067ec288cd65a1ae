// Allocator policy for long tensor jobs (see Memory.retainFreedMemory in AuscultTensor).
#include "CAuscultKernels.h"

#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>

void auscult_retain_freed_memory(void) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
}
#else
void auscult_retain_freed_memory(void) {}
#endif
