// Building the kernel's arguments from what Python passes (host code, both extension modules).
//
// pylogmap/kernels/args.py has already validated the tensors; these checks are the native side's own
// guard against a caller that bypasses it, so a bad call is an exception, never a bad read.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernel_args.h"

namespace pylogmap {

inline LogprobArgs args_from_python(uintptr_t logits, int64_t n_rows, int64_t vocab, int64_t row_stride,
                                    int dtype, uintptr_t targets, int target_dtype, uintptr_t out_logp,
                                    uintptr_t out_entropy, bool has_scale, double scale, bool has_softcap,
                                    double softcap) {
    if (n_rows < 0 || vocab < 1 || (n_rows > 1 && row_stride < vocab))
        throw std::invalid_argument("bad shape: need n_rows >= 0, vocab >= 1, row_stride >= vocab");
    if (dtype != kFloat32 && dtype != kBFloat16 && dtype != kFloat16)
        throw std::invalid_argument("bad logits dtype code " + std::to_string(dtype));
    if (target_dtype != kInt32 && target_dtype != kInt64)
        throw std::invalid_argument("bad targets dtype code " + std::to_string(target_dtype));
    if (n_rows > 0 && (!logits || !targets || !out_logp)) throw std::invalid_argument("null pointer");
    if (has_softcap && !(softcap > 0.0)) throw std::invalid_argument("softcap must be > 0");

    LogprobArgs a;
    a.logits = reinterpret_cast<const void*>(logits);
    a.n_rows = n_rows;
    a.vocab = vocab;
    // A single row's stride is never used to step; normalise it so that the CUDA kernel's
    // alignment test for vectorised loads does not depend on an arbitrary value.
    a.row_stride = n_rows > 1 ? row_stride : vocab;
    a.dtype = dtype;
    a.targets = reinterpret_cast<const void*>(targets);
    a.target_dtype = target_dtype;
    a.out_logp = reinterpret_cast<float*>(out_logp);
    a.out_entropy = reinterpret_cast<float*>(out_entropy);
    a.has_scale = has_scale;
    a.scale = static_cast<float>(scale);
    a.has_softcap = has_softcap;
    a.softcap = static_cast<float>(softcap);
    return a;
}

}  // namespace pylogmap
