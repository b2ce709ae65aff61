// pylogmap.kernels._core: the CPU kernel and the build information.
//
// Takes raw pointers, shapes and dtype codes as integers (pylogmap/kernels/ validates the torch
// tensors and allocates the outputs), picks the fastest row-kernel variant this CPU supports, and
// spreads the rows over OpenMP threads with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "cpu/isa.h"
#include "args_from_python.h"

namespace py = pybind11;

namespace pylogmap {
namespace {

using RowsFn = void (*)(const LogprobArgs&, int64_t, int64_t);

struct Variant {
    const char* name;
    RowsFn fn;
    bool (*supported)();
};

bool always() { return true; }

#if defined(PYLOGMAP_X86_VARIANTS)
bool has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
bool has_avx512() {
    __builtin_cpu_init();
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}
#endif

// best first
const std::vector<Variant>& variants() {
    static const std::vector<Variant> v = {
#if defined(PYLOGMAP_X86_VARIANTS)
        {"avx512", &isa_avx512::run_rows, &has_avx512},
        {"avx2", &isa_avx2::run_rows, &has_avx2},
#endif
        {"generic", &isa_generic::run_rows, &always},
    };
    return v;
}

const Variant& pick(const std::string& isa) {
    for (const auto& v : variants()) {
        if (isa.empty() ? v.supported() : (isa == v.name)) {
            if (!v.supported())
                throw std::invalid_argument("the CPU kernel variant '" + isa +
                                            "' is not supported by this CPU");
            return v;
        }
    }
    std::string names;
    for (const auto& v : variants()) names += std::string(names.empty() ? "" : ", ") + v.name;
    throw std::invalid_argument("unknown CPU kernel variant '" + isa + "' (compiled: " + names + ")");
}

std::string token_logprobs(uintptr_t logits, int64_t n_rows, int64_t vocab, int64_t row_stride,
                           int dtype, uintptr_t targets, int target_dtype, uintptr_t out_logp,
                           uintptr_t out_entropy, bool has_scale, double scale, bool has_softcap,
                           double softcap, int num_threads, const std::string& isa) {
    const LogprobArgs a = args_from_python(logits, n_rows, vocab, row_stride, dtype, targets, target_dtype,
                                           out_logp, out_entropy, has_scale, scale, has_softcap, softcap);

    const Variant& v = pick(isa);
    if (n_rows == 0) return v.name;

    py::gil_scoped_release release;
    // Rows are independent; hand them out in tasks of about 64k logits so that small-V problems
    // do not pay the scheduling cost per row and large-V ones still balance.
    const int64_t rows_per_task = std::max<int64_t>(1, (int64_t{1} << 16) / vocab);
    const int64_t n_tasks = (n_rows + rows_per_task - 1) / rows_per_task;
#if defined(_OPENMP)
    int threads = num_threads > 0 ? num_threads : omp_get_max_threads();
    threads = static_cast<int>(std::min<int64_t>(threads, n_tasks));
    if (threads > 1) {
        RowsFn fn = v.fn;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int64_t task = 0; task < n_tasks; ++task) {
            const int64_t r0 = task * rows_per_task;
            fn(a, r0, std::min(n_rows, r0 + rows_per_task));
        }
        return v.name;
    }
#else
    (void)num_threads;
    (void)n_tasks;
#endif
    v.fn(a, 0, n_rows);
    return v.name;
}

py::dict build_info() {
    py::dict d;
    d["version"] = PYLOGMAP_VERSION;
#if defined(PYLOGMAP_CUDA_BUILT)
    d["cuda_built"] = true;
#else
    d["cuda_built"] = false;
#endif
    d["cuda_mode"] = PYLOGMAP_CUDA_MODE;            // AUTO / ON / OFF as given to CMake
    d["cuda_compiler"] = PYLOGMAP_CUDA_COMPILER;    // what CMake found ("" if none)
    d["cuda_compiler_version"] = PYLOGMAP_CUDA_COMPILER_VERSION;
    d["cuda_architectures"] = PYLOGMAP_CUDA_ARCHS;
    d["cuda_not_built_reason"] = PYLOGMAP_CUDA_REASON;
    d["cxx_compiler"] = PYLOGMAP_CXX_COMPILER;
#if defined(_OPENMP)
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
    py::list compiled, supported;
    for (const auto& v : variants()) {
        compiled.append(v.name);
        if (v.supported()) supported.append(v.name);
    }
    d["cpu_variants"] = compiled;
    d["cpu_variants_supported"] = supported;
    d["cpu_variant"] = pick("").name;
    return d;
}

}  // namespace
}  // namespace pylogmap

PYBIND11_MODULE(_core, m) {
    m.doc() =
        "pylogmap's CPU kernel: fused per-token log-probabilities (online log-sum-exp) over raw "
        "pointers. Use pylogmap.kernels.token_logprobs, which validates the tensors.";
    m.def("token_logprobs", &pylogmap::token_logprobs, py::arg("logits"), py::arg("n_rows"),
          py::arg("vocab"), py::arg("row_stride"), py::arg("dtype"), py::arg("targets"),
          py::arg("target_dtype"), py::arg("out_logp"), py::arg("out_entropy"),
          py::arg("has_scale"), py::arg("scale"), py::arg("has_softcap"), py::arg("softcap"),
          py::arg("num_threads") = 0, py::arg("isa") = std::string(),
          "Fill out_logp (and out_entropy unless 0) for the rows; returns the CPU variant used.");
    m.def("build_info", &pylogmap::build_info,
          "How this extension was built: CUDA (built or why not), OpenMP, CPU variants.");
}
