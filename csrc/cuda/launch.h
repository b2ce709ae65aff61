// Host entry point of the CUDA kernel (logprob_kernel.cu), called by the pybind11 module.
#pragma once

#include <cuda_runtime.h>

#include "../kernel_args.h"

namespace pylogmap {
namespace cuda_impl {

// Enqueue the kernel on `stream` (the caller's current device must be the tensors' device).
// Returns the launch error, if any; errors during execution surface at the next synchronisation.
cudaError_t launch_logprobs(const LogprobArgs& a, cudaStream_t stream);

}  // namespace cuda_impl
}  // namespace pylogmap
