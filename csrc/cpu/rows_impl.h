// The CPU row kernel, written once and compiled once per instruction set.
//
// Each csrc/cpu/rows_<isa>.cpp defines PYLOGMAP_ISA_NS (the namespace and the name of the variant)
// and includes this file with its own compiler flags (-mavx512f..., -mavx2 -mfma -mf16c, or none).
// Everything here lives in an anonymous namespace inside pylogmap::PYLOGMAP_ISA_NS, so no inline
// function compiled with AVX-512 can be picked by the linker for the baseline variant (ODR safety).
//
// The arithmetic uses GCC/Clang vector extensions of the variant's register width: explicit SIMD
// without intrinsics (zmm for AVX-512, ymm for AVX2, xmm for SSE2/NEON).
//
// Algorithm per row (one pass over memory, online log-sum-exp):
//   the row is walked in chunks of CHUNK elements; each chunk is converted to fp32 (bf16/fp16 ->
//   fp32), scaled / soft-capped and stored in a small L1-resident buffer while its maximum is taken;
//   the running maximum m, sum s = sum exp(y - m) and, for the entropy, t = sum exp(y - m) (y - m)
//   are rescaled once per chunk when the maximum grows; then exp(y - m) is summed from the buffer.
//   So every logit is read from memory once and costs exactly one exponential.
//   logp = y[target] - (m + log s), entropy = log s - t / s.
#ifndef PYLOGMAP_ISA_NS
#error "define PYLOGMAP_ISA_NS before including rows_impl.h"
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#if defined(__AVX2__) || defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "../kernel_args.h"

namespace pylogmap {
namespace PYLOGMAP_ISA_NS {
namespace {

// PYLOGMAP_VEC_BYTES is the variant's native register width (16 SSE/NEON, 32 AVX2, 64 AVX-512):
// wider generic vectors than the hardware has are lowered badly (selects become scalar code).
#ifndef PYLOGMAP_VEC_BYTES
#define PYLOGMAP_VEC_BYTES 16
#endif
constexpr int kW = PYLOGMAP_VEC_BYTES / 4;  // fp32 lanes per vector
constexpr int64_t kChunk = 2048;            // elements per chunk: 8 KiB of fp32, stays in L1

typedef float vf __attribute__((vector_size(PYLOGMAP_VEC_BYTES)));
typedef int32_t vi __attribute__((vector_size(PYLOGMAP_VEC_BYTES)));
typedef uint32_t vu __attribute__((vector_size(PYLOGMAP_VEC_BYTES)));
typedef uint16_t vh __attribute__((vector_size(PYLOGMAP_VEC_BYTES / 2)));

#define PYLOGMAP_INLINE inline __attribute__((always_inline))

constexpr float kInf = std::numeric_limits<float>::infinity();

PYLOGMAP_INLINE vf splat(float x) {
    vf v = {};
    return v + x;
}

PYLOGMAP_INLINE vf vload(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

PYLOGMAP_INLINE void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }

// -------- loads with conversion to fp32 ----------------------------------------------------
template <typename T>
struct Load;

template <>
struct Load<float> {
    static PYLOGMAP_INLINE vf vec(const float* p) { return vload(p); }
    static PYLOGMAP_INLINE float one(const float* p) { return *p; }
};

// bf16 is the upper half of an fp32: shift it into place.
struct bf16_t {
    uint16_t bits;
};
template <>
struct Load<bf16_t> {
    static PYLOGMAP_INLINE vf vec(const bf16_t* p) {
        vh h;
        std::memcpy(&h, p, sizeof(h));
        vu u = __builtin_convertvector(h, vu) << 16;
        return (vf)u;
    }
    static PYLOGMAP_INLINE float one(const bf16_t* p) {
        uint32_t u = static_cast<uint32_t>(p->bits) << 16;
        float f;
        std::memcpy(&f, &u, sizeof(f));
        return f;
    }
};

// fp16: the F16C / AVX-512 conversion instruction where the variant has it, else integer bit
// manipulation (exact for every value: normals, subnormals, infinities, NaN; independent of the
// FTZ/DAZ flags). No _Float16, which GCC < 12 lacks on x86.
struct f16_t {
    uint16_t bits;
};

PYLOGMAP_INLINE float half_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7fffu;  // exponent and mantissa
    float f;
    if (em < 0x0400u) {  // zero or subnormal: em * 2^-24, exact in fp32 (a normal number)
        f = static_cast<float>(em) * 5.9604644775390625e-8f;
    } else {  // normal: rebias the exponent by 112; inf/NaN: by 224 (exponent 31 -> 255)
        const uint32_t bits = (em << 13) + (em >= 0x7c00u ? 0x70000000u : 0x38000000u);
        std::memcpy(&f, &bits, sizeof(f));
    }
    uint32_t out;
    std::memcpy(&out, &f, sizeof(out));
    out |= sign;
    std::memcpy(&f, &out, sizeof(f));
    return f;
}

template <>
struct Load<f16_t> {
    static PYLOGMAP_INLINE vf vec(const f16_t* p) {
#if defined(__AVX512F__) && PYLOGMAP_VEC_BYTES == 64
        __m512 v = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        vf r;
        std::memcpy(&r, &v, sizeof(r));
        return r;
#elif defined(__F16C__) && PYLOGMAP_VEC_BYTES == 32
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        vf r;
        std::memcpy(&r, &v, sizeof(r));
        return r;
#else
        vh h;
        std::memcpy(&h, p, sizeof(h));
        const vu u = __builtin_convertvector(h, vu);
        const vu sign = (u & 0x8000u) << 16;
        const vu em = u & 0x7fffu;
        const vu zero = u - u;
        const vu bias = (em >= 0x7c00u) ? zero + 0x70000000u : zero + 0x38000000u;
        const vu bits = (em << 13) + bias;
        const vf sub = __builtin_convertvector((vi)em, vf) * 5.9604644775390625e-8f;
        const vu mag = (em < 0x0400u) ? (vu)sub : bits;
        return (vf)(mag | sign);
#endif
    }
    static PYLOGMAP_INLINE float one(const f16_t* p) { return half_to_float(p->bits); }
};

// -------- exp -------------------------------------------------------------------------------
// Cephes-style expf: Cody-Waite range reduction x = n ln2 + r, degree-6 polynomial, 2^n built in
// the exponent bits. Max error about 2 ulp on [-87.3, 88]. Below -87.33 the result is 0 (the
// subnormal range is dropped: such terms are < 1e-38 of the row maximum's term). NaN stays NaN.
PYLOGMAP_INLINE vf vexp(vf x) {
    const float hi = 88.0f, lo = -87.33654475f;
    vf xc = x > hi ? splat(hi) : x;  // comparisons with NaN are false: NaN passes through
    xc = xc < lo ? splat(lo) : xc;
    // n = round(x / ln2) by the 1.5 * 2^23 trick (needs no -ffast-math, which we do not use)
    const float magic = 12582912.0f;
    vf n = (xc * 1.44269504088896341f + magic) - magic;
    vf r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = splat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vf y = p * (r * r) + r + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    y = y * (vf)e;
    return x < lo ? splat(0.0f) : y;
}

// exp for the hot loop: e^d for d <= 0 (the row's logits minus their maximum).
// d is scaled to u = d * T / ln2 (T = lanes per vector); 2^(u/T) = 2^n * 2^(j/T) * 2^(r/T) with
// u = T n + j + r, |r| <= 1/2: 2^(j/T) comes from a T-entry table held in one register (a single
// permute), 2^(r/T) from a short Taylor polynomial (|r ln2 / T| <= 0.022 for T = 16: degree 3,
// error 9e-9; T = 8 or 4: degree 4, error <= 4e-8), 2^n is added to the exponent bits.
// d below -126 ln2 (about -87.3) is clamped there: such a term is ~1e-38, not 0, which cannot be
// seen next to the maximum's term of 1. NaN gives NaN.
constexpr int kLogT = kW == 16 ? 4 : (kW == 8 ? 3 : 2);
constexpr double kLn2 = 0.693147180559945309417232121458;
constexpr float kScaleU = static_cast<float>(kW / kLn2);  // d -> u

struct ExpTable {
    vf tbl;  // 2^(j/T), j = 0..T-1
    ExpTable() {
        for (int j = 0; j < kW; ++j) tbl[j] = static_cast<float>(std::exp2(static_cast<double>(j) / kW));
    }
};

// tbl[idx mod T] per lane, one instruction
PYLOGMAP_INLINE vf permute(vf tbl, vi idx) {
#if defined(__AVX512F__) && PYLOGMAP_VEC_BYTES == 64
    __m512 t, r;
    __m512i i;
    std::memcpy(&t, &tbl, sizeof(t));
    std::memcpy(&i, &idx, sizeof(i));
    r = _mm512_permutexvar_ps(i, t);
#elif defined(__AVX2__) && PYLOGMAP_VEC_BYTES == 32
    __m256 t, r;
    __m256i i;
    std::memcpy(&t, &tbl, sizeof(t));
    std::memcpy(&i, &idx, sizeof(i));
    r = _mm256_permutevar8x32_ps(t, i);
#else
    vf r;
    for (int k = 0; k < kW; ++k) r[k] = tbl[idx[k] & (kW - 1)];
#endif
    vf out;
    std::memcpy(&out, &r, sizeof(out));
    return out;
}

#if (defined(__AVX512F__) && PYLOGMAP_VEC_BYTES == 64) || (defined(__AVX2__) && PYLOGMAP_VEC_BYTES == 32)
#define PYLOGMAP_TABLE_EXP 1
#else
#define PYLOGMAP_TABLE_EXP 0
#endif

PYLOGMAP_INLINE vf vexp_table(vf d, const ExpTable& et) {
    constexpr double a = kLn2 / kW;
    const float lo = -126.0f * kW;
    const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    vf u = d * kScaleU;
    u = u < lo ? splat(lo) : u;
    const vf tq = u + magic;
    const vf r = u - (tq - magic);  // in [-1/2, 1/2]
    vf p;
    if (kW == 16) {
        p = splat(static_cast<float>(a * a * a / 6));
        p = p * r + static_cast<float>(a * a / 2);
    } else {
        p = splat(static_cast<float>(a * a * a * a / 24));
        p = p * r + static_cast<float>(a * a * a / 6);
        p = p * r + static_cast<float>(a * a / 2);
    }
    p = p * r + static_cast<float>(a);
    p = p * r + 1.0f;
    const vi bits = (vi)tq;  // low bits: the integer u rounded to, two's complement modulo 2^22
    const vf base = permute(et.tbl, bits);  // uses bits mod T: the table index j
    const vi scaled = (vi)base + ((bits >> kLogT) << 23);  // times 2^n (n = floor(u / T))
    return (vf)scaled * p;
}

// The hot loop's exp: the table version where one instruction permutes a register (AVX2,
// AVX-512), the polynomial one elsewhere (a lane-by-lane table lookup would cost more).
PYLOGMAP_INLINE vf hot_exp(vf d, const ExpTable& et) {
#if PYLOGMAP_TABLE_EXP
    return vexp_table(d, et);
#else
    (void)et;
    return vexp(d);
#endif
}

// tanh(u) = 1 - 2 / (exp(2u) + 1): saturates to +-1 for large |u|, -inf -> -1, NaN -> NaN.
// Absolute error about 1e-7, i.e. about softcap * 1e-7 in the capped logit.
PYLOGMAP_INLINE vf vtanh(vf u) { return 1.0f - 2.0f / (vexp(u + u) + 1.0f); }

// -------- the per-logit transform ---------------------------------------------------------
enum Mode { kPlain = 0, kScale = 1, kSoftcap = 2 };

struct Transform {
    float mul;  // scale, or scale / softcap
    float cap;  // softcap
};

template <int MODE>
PYLOGMAP_INLINE vf transform(vf x, const Transform& tr) {
    if (MODE == kPlain) return x;
    if (MODE == kScale) return x * tr.mul;
    return tr.cap * vtanh(x * tr.mul);
}

// The target's logit goes through exactly the same vector code as the row, so it is bit-identical
// to the value that entered the log-sum-exp.
template <int MODE>
PYLOGMAP_INLINE float transform_one(float x, const Transform& tr) {
    vf v = transform<MODE>(splat(x), tr);
    return v[0];
}

PYLOGMAP_INLINE float hmax(vf v) {
    float m = v[0];
    for (int i = 1; i < kW; ++i) m = v[i] > m ? v[i] : m;
    return m;
}

PYLOGMAP_INLINE float hsum(vf v) {
    // pairwise, for accuracy and to let the compiler use shuffles
    float a[kW];
    std::memcpy(a, &v, sizeof(a));
    for (int w = kW / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; ++i) a[i] += a[i + w];
    return a[0];
}

template <typename T, int MODE, bool ENTROPY>
void row(const LogprobArgs& a, const Transform& tr, int64_t r) {
    const int64_t V = a.vocab;
    const T* x = static_cast<const T*>(a.logits) + r * a.row_stride;
    alignas(64) float buf[kChunk];

    const ExpTable et;
    float m = -kInf;  // running maximum
    double s = 0.0;   // sum exp(y - m)
    double t = 0.0;   // sum exp(y - m) * (y - m)   (entropy only)
    vi lane;
    for (int i = 0; i < kW; ++i) lane[i] = i;
    vi vnan = lane - lane;  // lanes that saw a NaN: the row's results are then NaN

    for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
        const int64_t len = (V - c0 < kChunk) ? (V - c0) : kChunk;
        const T* xc = x + c0;
        // A: convert, transform, store, maximum
        vf vmax = splat(-kInf);
        int64_t i = 0;
        for (; i + kW <= len; i += kW) {
            vf y = transform<MODE>(Load<T>::vec(xc + i), tr);
            vstore(buf + i, y);
            vmax = y > vmax ? y : vmax;
            vnan |= (y != y);
        }
        if (i < len) {  // ragged end: pad the last vector with -inf (after the transform)
            const int rem = static_cast<int>(len - i);
            vf v = splat(0.0f);
            for (int j = 0; j < rem; ++j) v[j] = Load<T>::one(xc + i + j);
            vf y = transform<MODE>(v, tr);
            y = lane < rem ? y : splat(-kInf);
            vstore(buf + i, y);
            vmax = y > vmax ? y : vmax;
            vnan |= (y != y);
            i += kW;
        }
        const int64_t len_padded = i;
        const float cm = hmax(vmax);
        if (cm > m) {  // the maximum grew: rescale what was summed so far
            if (m != -kInf) {
                const double d = static_cast<double>(m) - cm;
                const double f = std::exp(d);
                // f * d, not d * s: d * s overflows for d ~ -3e38 (huge negative masks)
                if (ENTROPY) t = f * t + (f * d) * s;
                s *= f;
            }
            m = cm;
        }
        if (m == -kInf) continue;  // everything so far is -inf (masked): nothing to add
        // B: sum of exponentials from the L1 buffer. Meanwhile, prefetch the next chunk (or the
        // next row's first one): pass A is a short burst of loads that would otherwise wait for
        // L3/DRAM with nothing else to do (measured: 2x slower on fp32 rows that are not in L2).
        const char* next = reinterpret_cast<const char*>(c0 + kChunk < V ? xc + kChunk : x + a.row_stride);
        vf vs0 = splat(0.0f), vs1 = splat(0.0f), vt0 = splat(0.0f), vt1 = splat(0.0f);
        const vf vm = splat(m);
        int64_t k = 0;
        for (; k + 2 * kW <= len_padded; k += 2 * kW) {
            // 2 * kW elements consumed, 2 * kW * sizeof(T) bytes of the next chunk requested
            for (int b = 0; b < static_cast<int>(2 * kW * sizeof(T)); b += 64)
                __builtin_prefetch(next + k * static_cast<int64_t>(sizeof(T)) + b, 0, 3);
            vf d0 = vload(buf + k) - vm;
            vf d1 = vload(buf + k + kW) - vm;
            vf e0 = hot_exp(d0, et), e1 = hot_exp(d1, et);
            vs0 += e0;
            vs1 += e1;
            if (ENTROPY) {
                // -inf entries: e ~ 1e-38 and d clamped to a finite value, so e * d ~ 0 (not NaN)
                d0 = d0 < -104.0f ? splat(-104.0f) : d0;
                d1 = d1 < -104.0f ? splat(-104.0f) : d1;
                vt0 += e0 * d0;
                vt1 += e1 * d1;
            }
        }
        if (k < len_padded) {
            vf d0 = vload(buf + k) - vm;
            vf e0 = hot_exp(d0, et);
            vs0 += e0;
            if (ENTROPY) {
                d0 = d0 < -104.0f ? splat(-104.0f) : d0;
                vt0 += e0 * d0;
            }
        }
        s += hsum(vs0 + vs1);
        if (ENTROPY) t += hsum(vt0 + vt1);
    }

    const float nan = std::numeric_limits<float>::quiet_NaN();
    bool has_nan = false;
    for (int i = 0; i < kW; ++i) has_nan |= vnan[i] != 0;
    if (has_nan) {  // NaN logits make the row's results NaN (never a silently finite number)
        a.out_logp[r] = nan;
        if (ENTROPY) a.out_entropy[r] = nan;
        return;
    }
    const double log_s = std::log(s);
    int64_t tgt;
    if (a.target_dtype == kInt32)
        tgt = static_cast<const int32_t*>(a.targets)[r];
    else
        tgt = static_cast<const int64_t*>(a.targets)[r];
    if (tgt < 0 || tgt >= V) {
        a.out_logp[r] = nan;
    } else {
        const float yt = transform_one<MODE>(Load<T>::one(x + tgt), tr);
        a.out_logp[r] = static_cast<float>((static_cast<double>(yt) - m) - log_s);
    }
    if (ENTROPY) a.out_entropy[r] = static_cast<float>(log_s - t / s);
}

template <typename T, int MODE, bool ENTROPY>
void rows_range(const LogprobArgs& a, const Transform& tr, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) row<T, MODE, ENTROPY>(a, tr, r);
}

template <typename T, int MODE>
void dispatch_entropy(const LogprobArgs& a, const Transform& tr, int64_t r0, int64_t r1) {
    if (a.out_entropy)
        rows_range<T, MODE, true>(a, tr, r0, r1);
    else
        rows_range<T, MODE, false>(a, tr, r0, r1);
}

template <typename T>
void dispatch_mode(const LogprobArgs& a, int64_t r0, int64_t r1) {
    Transform tr{1.0f, 0.0f};
    if (a.has_softcap) {
        tr.cap = a.softcap;
        tr.mul = static_cast<float>((a.has_scale ? static_cast<double>(a.scale) : 1.0) /
                                    static_cast<double>(a.softcap));
        dispatch_entropy<T, kSoftcap>(a, tr, r0, r1);
    } else if (a.has_scale) {
        tr.mul = a.scale;
        dispatch_entropy<T, kScale>(a, tr, r0, r1);
    } else {
        dispatch_entropy<T, kPlain>(a, tr, r0, r1);
    }
}

}  // namespace

// The variant's entry point: rows [r0, r1) of the problem described by `a`.
void run_rows(const LogprobArgs& a, int64_t r0, int64_t r1) {
    switch (a.dtype) {
        case kFloat32:
            dispatch_mode<float>(a, r0, r1);
            break;
        case kBFloat16:
            dispatch_mode<bf16_t>(a, r0, r1);
            break;
        case kFloat16:
            dispatch_mode<f16_t>(a, r0, r1);
            break;
        default:
            break;  // unreachable: the module checks the dtype code first
    }
}

}  // namespace PYLOGMAP_ISA_NS
}  // namespace pylogmap
