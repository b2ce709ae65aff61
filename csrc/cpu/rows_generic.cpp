// The generic variant of the CPU row kernel (compiler flags for it are set in CMakeLists.txt).
#define PYLOGMAP_ISA_NS isa_generic
#define PYLOGMAP_VEC_BYTES 16
#include "rows_impl.h"
