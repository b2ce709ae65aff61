// Entry points of the CPU row-kernel variants (one per instruction set, see rows_impl.h).
#pragma once

#include <cstdint>

#include "../kernel_args.h"

namespace pylogmap {
namespace isa_generic {
void run_rows(const LogprobArgs& a, int64_t r0, int64_t r1);
}
#if defined(PYLOGMAP_X86_VARIANTS)
namespace isa_avx2 {
void run_rows(const LogprobArgs& a, int64_t r0, int64_t r1);
}
namespace isa_avx512 {
void run_rows(const LogprobArgs& a, int64_t r0, int64_t r1);
}
#endif
}  // namespace pylogmap
