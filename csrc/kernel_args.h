// The kernel contract shared by the CPU and the CUDA implementation.
//
// Python (pylogmap/kernels/args.py) validates the tensors and fills this struct with raw pointers,
// shapes and dtype codes; the compiled code never sees a torch object, so the build needs no torch.
#pragma once

#include <cstdint>

namespace pylogmap {

// dtype codes, the same numbers as LOGITS_CODES and TARGET_CODES in pylogmap/kernels/args.py
enum LogitsDtype : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };
enum TargetDtype : int { kInt32 = 0, kInt64 = 1 };

struct LogprobArgs {
    const void* logits = nullptr;  // [n_rows, vocab], element (r, v) at logits + r * row_stride + v
    int64_t n_rows = 0;
    int64_t vocab = 0;
    int64_t row_stride = 0;  // in elements, >= vocab
    int dtype = kFloat32;
    const void* targets = nullptr;  // [n_rows], int32 or int64, contiguous
    int target_dtype = kInt64;
    float* out_logp = nullptr;     // [n_rows] fp32
    float* out_entropy = nullptr;  // [n_rows] fp32, or nullptr when not wanted
    // y = x * scale, then y = softcap * tanh(y / softcap); folded into one multiplier when both are
    // given: y = softcap * tanh(x * (scale / softcap)).
    bool has_scale = false;
    float scale = 1.0f;
    bool has_softcap = false;
    float softcap = 0.0f;
};

// A target outside [0, vocab) never causes an out-of-bounds read: its row gets logp = NaN.
// (Python checks the range before the launch, so this is a second line of defence.)

}  // namespace pylogmap
