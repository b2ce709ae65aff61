// The avx2 variant of the CPU row kernel (compiler flags for it are set in CMakeLists.txt).
#define PYLOGMAP_ISA_NS isa_avx2
#define PYLOGMAP_VEC_BYTES 32
#include "rows_impl.h"
