// pylogmap.kernels._cuda: the CUDA kernel over raw device pointers and a stream handle.
//
// Linked with the static CUDA runtime: importing needs no libcudart and no driver. The driver
// (libcuda.so) is looked up on the first CUDA call, so on a machine without a GPU or driver the
// module imports, runtime_status() says why CUDA cannot run, and token_logprobs raises
// RuntimeError with that reason.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../args_from_python.h"
#include "launch.h"

namespace py = pybind11;

namespace {

std::string err(cudaError_t e) {
    return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

py::dict runtime_status() {
    py::dict d;
    int driver = 0, runtime = 0, count = 0;
    cudaDriverGetVersion(&driver);  // 0 when no driver is installed
    cudaRuntimeGetVersion(&runtime);
    d["driver_version"] = driver;
    d["runtime_version"] = runtime;
    const cudaError_t e = cudaGetDeviceCount(&count);
    d["device_count"] = e == cudaSuccess ? count : 0;
    d["error"] = e == cudaSuccess ? py::object(py::none()) : py::object(py::str(err(e)));
    if (e != cudaSuccess) cudaGetLastError();  // clear the sticky-free error state
    d["architectures"] = PYLOGMAP_CUDA_ARCHS;
    return d;
}

void token_logprobs(uintptr_t logits, int64_t n_rows, int64_t vocab, int64_t row_stride, int dtype,
                    uintptr_t targets, int target_dtype, uintptr_t out_logp, uintptr_t out_entropy,
                    bool has_scale, double scale, bool has_softcap, double softcap, int device,
                    uintptr_t stream) {
    using namespace pylogmap;
    const LogprobArgs a = args_from_python(logits, n_rows, vocab, row_stride, dtype, targets, target_dtype,
                                           out_logp, out_entropy, has_scale, scale, has_softcap, softcap);
    if (n_rows == 0) return;

    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        throw std::runtime_error("pylogmap CUDA kernel: CUDA is not usable on this machine (" +
                                 err(e) + ")");
    }
    if (device < 0 || device >= count)
        throw std::invalid_argument("pylogmap CUDA kernel: no CUDA device " + std::to_string(device));
    e = cudaSetDevice(device);
    if (e == cudaSuccess) e = pylogmap::cuda_impl::launch_logprobs(a, reinterpret_cast<cudaStream_t>(stream));
    if (e != cudaSuccess) {
        std::string msg = "pylogmap CUDA kernel launch failed on device " + std::to_string(device) +
                          ": " + err(e);
        if (e == cudaErrorNoKernelImageForDevice)
            msg += std::string(" (this build has code for ") + PYLOGMAP_CUDA_ARCHS +
                   "; rebuild with -C cmake.define.CMAKE_CUDA_ARCHITECTURES=<your GPU's>)";
        throw std::runtime_error(msg);
    }
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() =
        "pylogmap's CUDA kernel: fused per-token log-probabilities over raw device pointers, "
        "enqueued on the given stream. Use pylogmap.kernels.token_logprobs, which validates the "
        "tensors and passes torch's current stream.";
    m.def("token_logprobs", &token_logprobs, py::arg("logits"), py::arg("n_rows"), py::arg("vocab"),
          py::arg("row_stride"), py::arg("dtype"), py::arg("targets"), py::arg("target_dtype"),
          py::arg("out_logp"), py::arg("out_entropy"), py::arg("has_scale"), py::arg("scale"),
          py::arg("has_softcap"), py::arg("softcap"), py::arg("device"), py::arg("stream"),
          "Enqueue the kernel on `stream` of CUDA device `device` (asynchronous).");
    m.def("runtime_status", &runtime_status,
          "Driver and runtime versions, device count, and the error that stops CUDA here, if any.");
    m.attr("architectures") = PYLOGMAP_CUDA_ARCHS;
}
