// pylogmap.mapping._pairs: float64 moments of row differences for given (query, candidate) pairs,
// and the bfloat16 rounding of float32 rows for the bf16 Gram tiles (pylogmap/mapping/gram_bf16.py).
//
// The exact stage of the neighbour search (pylogmap/mapping/knn_search.py) ranks each query's
// candidates by  sum_k d_k^2  with  d_k = b[j,k] - a[i,k] - (mean_b[j] - mean_a[i])  in float64,
// and the map also needs  sum_k d_k^4 / N  (the standard error of the KL estimate). numpy has to
// gather the candidate rows into a buffer, widen them to float64 and then reduce: three passes
// over about 4 GB for 10,000 x 10,000. Here every pair reads its two rows once, widens in
// registers and sums in float64, with the pairs spread over OpenMP threads and the GIL released.
//
// Each pair is summed by one thread in a fixed order (32 partial sums, then those in order), so
// the result does not depend on the thread count. No torch: the map side imports this.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PYLOGMAP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PYLOGMAP_CLONES
#endif

// 32 partial sums per moment (four 512-bit or eight 256-bit accumulators: the additions of one
// pair do not wait on each other), added in lane order at the end: the same order on every ISA.
constexpr int kLanes = 32;

template <typename T>
__attribute__((always_inline)) inline void moments(const T* x, const T* y, double shift, int64_t n, bool fourth,
                                                   double* s2, double* s4) {
    double a2[kLanes] = {}, a4[kLanes] = {};
    int64_t k = 0;
    for (; k + kLanes <= n; k += kLanes) {
        for (int j = 0; j < kLanes; ++j) {
            const double d = (static_cast<double>(y[k + j]) - static_cast<double>(x[k + j])) - shift;
            const double d2 = d * d;
            a2[j] += d2;
            if (fourth) a4[j] += d2 * d2;
        }
    }
    for (int j = 0; k < n; ++k, ++j) {
        const double d = (static_cast<double>(y[k]) - static_cast<double>(x[k])) - shift;
        const double d2 = d * d;
        a2[j] += d2;
        a4[j] += d2 * d2;
    }
    double t2 = 0.0, t4 = 0.0;
    for (int j = 0; j < kLanes; ++j) {
        t2 += a2[j];
        t4 += a4[j];
    }
    *s2 = t2;
    *s4 = t4;
}

PYLOGMAP_CLONES void moments_f32(const float* x, const float* y, double shift, int64_t n, bool fourth,
                                 double* s2, double* s4) {
    moments(x, y, shift, n, fourth, s2, s4);
}

PYLOGMAP_CLONES void moments_f64(const double* x, const double* y, double shift, int64_t n, bool fourth,
                                 double* s2, double* s4) {
    moments(x, y, shift, n, fourth, s2, s4);
}

using Index = py::array_t<int64_t, py::array::c_style>;
using Vec = py::array_t<double, py::array::c_style>;

template <typename T>
void run(const py::array_t<T, py::array::c_style>& a, const py::array_t<T, py::array::c_style>& b, const Vec& mean_a,
         const Vec& mean_b, const Index& ia, const Index& ib, Vec& sq, py::object m4_obj) {
    if (a.ndim() != 2 || b.ndim() != 2 || a.shape(1) != b.shape(1))
        throw std::invalid_argument("a and b must be 2-D with the same number of columns");
    const int64_t n_a = a.shape(0), n_b = b.shape(0), N = a.shape(1);
    const int64_t P = ia.size();
    if (ib.size() != P || sq.size() != P) throw std::invalid_argument("ia, ib and sq must have the same length");
    if (mean_a.size() != n_a || mean_b.size() != n_b)
        throw std::invalid_argument("mean_a and mean_b must have one value per row of a and b");
    const bool fourth = !m4_obj.is_none();
    double* m4 = nullptr;
    if (fourth) {
        // checked, never cast: a converted copy would take the results and be thrown away
        if (!py::isinstance<py::array>(m4_obj)) throw py::type_error("m4 must be a float64 array or None");
        auto m4_arr = py::reinterpret_borrow<py::array>(m4_obj);
        if (!m4_arr.dtype().is(py::dtype::of<double>()) || !(m4_arr.flags() & py::array::c_style) ||
            !m4_arr.writeable())
            throw py::type_error("m4 must be a writable C-contiguous float64 array");
        if (m4_arr.size() != P) throw std::invalid_argument("m4 must have the same length as ia");
        m4 = static_cast<double*>(m4_arr.mutable_data());
    }
    const T* pa = a.data();
    const T* pb = b.data();
    const double* ma = mean_a.data();
    const double* mb = mean_b.data();
    const int64_t* xa = ia.data();
    const int64_t* xb = ib.data();
    double* out = sq.mutable_data();
    for (int64_t p = 0; p < P; ++p) {
        if (xa[p] < 0 || xa[p] >= n_a || xb[p] < 0 || xb[p] >= n_b)
            throw std::out_of_range("pair " + std::to_string(p) + " names a row outside a or b");
    }
    py::gil_scoped_release release;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; ++p) {
        const double shift = mb[xb[p]] - ma[xa[p]];
        double s2, s4;
        if constexpr (sizeof(T) == 4)
            moments_f32(pa + xa[p] * N, pb + xb[p] * N, shift, N, fourth, &s2, &s4);
        else
            moments_f64(pa + xa[p] * N, pb + xb[p] * N, shift, N, fourth, &s2, &s4);
        out[p] = s2;
        if (fourth) m4[p] = s4 / static_cast<double>(N);
    }
}


// Round-to-nearest-even float32 -> bfloat16 (the upper 16 bits), for finite input.
inline uint16_t to_bf16_bits(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// Rounds one row; returns nonzero if a value is NaN, infinite or at least 2^126 in magnitude
// (a NaN compares false, so `!(|x| < 2^126)` catches all three in one vectorisable test).
PYLOGMAP_CLONES int round_row(const float* x, int64_t n, uint16_t* out) {
    int bad = 0;
    for (int64_t k = 0; k < n; ++k) {
        bad |= !(std::fabs(x[k]) < 0x1.0p126f);
        out[k] = to_bf16_bits(x[k]);
    }
    return bad;
}

using Rows32 = py::array_t<float, py::array::c_style>;
using Half = py::array_t<uint16_t, py::array::c_style>;

void to_bf16(const Rows32& x, Half& out) {
    if (x.ndim() != 2 || out.ndim() != 2 || out.shape(0) != x.shape(0) || out.shape(1) != x.shape(1))
        throw std::invalid_argument("x and out must be 2-D arrays of one shape");
    const int64_t n = x.shape(0), N = x.shape(1);
    const float* px = x.data();
    uint16_t* po = out.mutable_data();
    int bad = 0;
    {
        py::gil_scoped_release release;
#pragma omp parallel for schedule(static) reduction(| : bad)
        for (int64_t i = 0; i < n; ++i) {
            const float* row = px + i * N;
            bad |= round_row(row, N, po + i * N);
        }
    }
    if (bad) throw std::domain_error("to_bf16 needs finite values below 2^126 in magnitude");
}

}  // namespace

PYBIND11_MODULE(_pairs, m) {
    m.doc() = "float64 moments of row differences for (query, candidate) pairs (the map's exact stage)";
    const char* doc =
        "pair_moments(a, b, mean_a, mean_b, ia, ib, sq, m4=None): for every pair p, with\n"
        "d = b[ib[p]] - a[ia[p]] - (mean_b[ib[p]] - mean_a[ia[p]]) in float64, write sum(d**2) to\n"
        "sq[p] and, when m4 is given, sum(d**4) / N to m4[p]. a and b: C-contiguous float32 or\n"
        "float64 of one dtype; nothing is converted or copied.";
    m.def("pair_moments", &run<float>, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("mean_a").noconvert(), py::arg("mean_b").noconvert(), py::arg("ia").noconvert(),
          py::arg("ib").noconvert(), py::arg("sq").noconvert(), py::arg("m4") = py::none(), doc);
    m.def("pair_moments", &run<double>, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("mean_a").noconvert(), py::arg("mean_b").noconvert(), py::arg("ia").noconvert(),
          py::arg("ib").noconvert(), py::arg("sq").noconvert(), py::arg("m4") = py::none(), doc);
    m.def("to_bf16", &to_bf16, py::arg("x").noconvert(), py::arg("out").noconvert(),
          "to_bf16(x, out): float32 rows x rounded to bfloat16 (to nearest, ties to even) as their bits\n"
          "in uint16 out: |x - bf16(x)| <= 2^-8 |x| elementwise (the bracket of gram_bf16.py). Values\n"
          "must be finite and below 2^126 in magnitude (ValueError otherwise).");
}
