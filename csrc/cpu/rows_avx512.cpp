// The avx512 variant of the CPU row kernel (compiler flags for it are set in CMakeLists.txt).
#define PYLOGMAP_ISA_NS isa_avx512
#define PYLOGMAP_VEC_BYTES 64
#include "rows_impl.h"
