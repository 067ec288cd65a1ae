// Allocator policy for long tensor jobs (see Memory.retainFreedMemory in AuscultTensor).
#include "CAuscultKernels.h"
// <limits.h> first: it brings <features.h>, which defines __GLIBC__. Testing __GLIBC__ before any
// C library header had made this function an empty body on glibc too, unnoticed while the first
// BLAS call also set the policy from Swift.
#include <limits.h>

#if defined(__GLIBC__)
#include <malloc.h>

void auscult_retain_freed_memory(void) {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

long auscult_mapped_allocation_bytes(void) { return (long)mallinfo2().hblkhd; }
#else
void auscult_retain_freed_memory(void) {}
long auscult_mapped_allocation_bytes(void) { return -1; }
#endif
