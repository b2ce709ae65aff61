// The CUDA row kernel: per-token log-probabilities (and entropy) in one pass over each row.
//
// One thread block per row (grid-stride over rows). Each thread keeps an online state
// (m = running max, s = sum exp(y - m), t = sum exp(y - m) (y - m)) over the elements it reads with
// 16-byte vector loads (4 fp32 or 8 bf16/fp16 per load, 4 loads in flight); the few elements
// before the first 16-byte boundary of the row (rows may start anywhere: unaligned strides) and
// after the last full vector are read one by one. The states are merged with warp shuffles and
// shared memory; thread 0 writes logp = y[target] - (m + log s) and the entropy log s - t / s.
// Accumulation is fp32; exponentials use the hardware ex2 (__expf, ~2 ulp).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../kernel_args.h"
#include "launch.h"

namespace pylogmap {
namespace cuda_impl {
namespace {

constexpr int kMaxThreads = 256;
constexpr int kUnroll = 4;

struct State {
    float m;  // running maximum (-inf: nothing seen yet, then s = t = 0)
    float s;  // sum exp(y - m)
    float t;  // sum exp(y - m) * (y - m)
    int bad;  // a NaN was seen: the row's results are NaN
};

template <typename T>
struct Elem;

template <>
struct Elem<float> {
    static constexpr int kPer = 4;
    static __device__ __forceinline__ void cvt(const uint4& u, float* y) {
        y[0] = __uint_as_float(u.x);
        y[1] = __uint_as_float(u.y);
        y[2] = __uint_as_float(u.z);
        y[3] = __uint_as_float(u.w);
    }
    static __device__ __forceinline__ float one(const void* row, int64_t i) {
        return static_cast<const float*>(row)[i];
    }
};

struct bf16_tag {};
template <>
struct Elem<bf16_tag> {
    static constexpr int kPer = 8;
    static __device__ __forceinline__ void cvt2(uint32_t w, float* y) {
        y[0] = __uint_as_float(w << 16);
        y[1] = __uint_as_float(w & 0xffff0000u);
    }
    static __device__ __forceinline__ void cvt(const uint4& u, float* y) {
        cvt2(u.x, y);
        cvt2(u.y, y + 2);
        cvt2(u.z, y + 4);
        cvt2(u.w, y + 6);
    }
    static __device__ __forceinline__ float one(const void* row, int64_t i) {
        return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(row)[i]) << 16);
    }
};

struct f16_tag {};
template <>
struct Elem<f16_tag> {
    static constexpr int kPer = 8;
    static __device__ __forceinline__ void cvt2(uint32_t w, float* y) {
        __half2 h = *reinterpret_cast<const __half2*>(&w);
        float2 f = __half22float2(h);
        y[0] = f.x;
        y[1] = f.y;
    }
    static __device__ __forceinline__ void cvt(const uint4& u, float* y) {
        cvt2(u.x, y);
        cvt2(u.y, y + 2);
        cvt2(u.z, y + 4);
        cvt2(u.w, y + 6);
    }
    static __device__ __forceinline__ float one(const void* row, int64_t i) {
        return __half2float(static_cast<const __half*>(row)[i]);
    }
};

struct Params {
    LogprobArgs a;
    int mode;   // 0 plain, 1 scale, 2 softcap (with the scale folded into mul)
    float mul;  // scale, or scale / softcap
    float cap;  // softcap
};

__device__ __forceinline__ float xform(float x, const Params& p) {
    if (p.mode == 0) return x;
    if (p.mode == 1) return x * p.mul;
    return p.cap * tanhf(x * p.mul);
}

template <bool ENT, int K>
__device__ __forceinline__ void add_group(State& st, const float* y) {
    float gm = y[0];
#pragma unroll
    for (int i = 1; i < K; ++i) gm = fmaxf(gm, y[i]);
#pragma unroll
    for (int i = 0; i < K; ++i) st.bad |= (y[i] != y[i]);
    const float nm = fmaxf(st.m, gm);
    if (nm == -INFINITY) return;  // all -inf so far (masked entries): nothing to add
    if (nm > st.m) {
        if (st.m != -INFINITY) {
            const float d = st.m - nm;
            const float f = __expf(d);
            if (ENT) st.t = f * st.t + (f * d) * st.s;  // not d * s: overflows for d ~ -3e38
            st.s *= f;
        }
        st.m = nm;
    }
#pragma unroll
    for (int i = 0; i < K; ++i) {
        float d = y[i] - st.m;
        const float e = __expf(d);  // exp(-inf) = 0
        st.s += e;
        if (ENT) {
            d = d < -104.0f ? -104.0f : d;  // masked entries: e = 0 and e * d = 0, not NaN
            st.t += e * d;
        }
    }
}

template <bool ENT>
__device__ __forceinline__ State combine(const State& a, const State& b) {
    State r;
    r.bad = a.bad | b.bad;
    r.m = fmaxf(a.m, b.m);
    r.s = 0.0f;
    r.t = 0.0f;
    if (r.m == -INFINITY) return r;
    if (a.m != -INFINITY) {
        const float d = a.m - r.m, f = __expf(d);
        r.s += a.s * f;
        if (ENT) r.t += f * a.t + (f * d) * a.s;
    }
    if (b.m != -INFINITY) {
        const float d = b.m - r.m, f = __expf(d);
        r.s += b.s * f;
        if (ENT) r.t += f * b.t + (f * d) * b.s;
    }
    return r;
}

template <bool ENT>
__device__ __forceinline__ State warp_reduce(State st) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        State o;
        o.m = __shfl_xor_sync(0xffffffffu, st.m, off);
        o.s = __shfl_xor_sync(0xffffffffu, st.s, off);
        o.t = ENT ? __shfl_xor_sync(0xffffffffu, st.t, off) : 0.0f;
        o.bad = __shfl_xor_sync(0xffffffffu, st.bad, off);
        st = combine<ENT>(st, o);
    }
    return st;
}

template <typename T, bool ENT>
__global__ void __launch_bounds__(kMaxThreads) logprob_rows(const Params p) {
    using E = Elem<T>;
    constexpr int kPer = E::kPer;
    constexpr int kBytes = 16;
    const LogprobArgs& a = p.a;
    const int tid = threadIdx.x;
    const int nthreads = blockDim.x;
    __shared__ State warp_states[kMaxThreads / 32];
    const int elem = kBytes / kPer;

    for (int64_t r = blockIdx.x; r < a.n_rows; r += gridDim.x) {
        const char* row = static_cast<const char*>(a.logits) + r * a.row_stride * elem;
        const int64_t V = a.vocab;
        State st{-INFINITY, 0.0f, 0.0f, 0};

        // head: elements before the first 16-byte boundary
        const int mis = static_cast<int>(reinterpret_cast<uintptr_t>(row) & (kBytes - 1));
        int64_t head = mis ? (kBytes - mis) / elem : 0;
        if (head > V) head = V;
        for (int64_t i = tid; i < head; i += nthreads) {
            float y = xform(E::one(row, i), p);
            add_group<ENT, 1>(st, &y);
        }
        // body: 16-byte vectors, kUnroll loads in flight per thread
        const uint4* vec = reinterpret_cast<const uint4*>(row + head * elem);
        const int64_t nvec = (V - head) / kPer;
        int64_t j = tid;
        for (; j + (kUnroll - 1) * nthreads < nvec; j += kUnroll * nthreads) {
            uint4 u[kUnroll];
#pragma unroll
            for (int q = 0; q < kUnroll; ++q) u[q] = __ldg(vec + j + q * nthreads);
#pragma unroll
            for (int q = 0; q < kUnroll; ++q) {
                float y[kPer];
                E::cvt(u[q], y);
#pragma unroll
                for (int k = 0; k < kPer; ++k) y[k] = xform(y[k], p);
                add_group<ENT, kPer>(st, y);
            }
        }
        for (; j < nvec; j += nthreads) {
            float y[kPer];
            E::cvt(__ldg(vec + j), y);
#pragma unroll
            for (int k = 0; k < kPer; ++k) y[k] = xform(y[k], p);
            add_group<ENT, kPer>(st, y);
        }
        // tail: after the last full vector
        for (int64_t i = head + nvec * kPer + tid; i < V; i += nthreads) {
            float y = xform(E::one(row, i), p);
            add_group<ENT, 1>(st, &y);
        }

        // block reduction
        st = warp_reduce<ENT>(st);
        const int warp = tid >> 5, lane = tid & 31, nwarps = (nthreads + 31) >> 5;
        if (lane == 0) warp_states[warp] = st;
        __syncthreads();
        if (warp == 0) {
            st = lane < nwarps ? warp_states[lane] : State{-INFINITY, 0.0f, 0.0f, 0};
            st = warp_reduce<ENT>(st);
            if (lane == 0) {
                const float nan = __int_as_float(0x7fc00000);
                const float log_s = logf(st.s);
                int64_t tgt = a.target_dtype == kInt32 ? static_cast<const int32_t*>(a.targets)[r]
                                                      : static_cast<const int64_t*>(a.targets)[r];
                float lp = nan;
                if (!st.bad && tgt >= 0 && tgt < V) lp = (xform(E::one(row, tgt), p) - st.m) - log_s;
                a.out_logp[r] = lp;
                if (ENT) a.out_entropy[r] = st.bad ? nan : log_s - st.t / st.s;
            }
        }
        __syncthreads();  // warp_states is reused by the next row
    }
}

template <typename T>
cudaError_t launch_t(const Params& p, cudaStream_t stream) {
    const int64_t V = p.a.vocab;
    int threads = 32;  // enough threads for about kUnroll vectors each, at most kMaxThreads
    while (threads < kMaxThreads && static_cast<int64_t>(threads) * Elem<T>::kPer * kUnroll < V)
        threads *= 2;
    const int64_t max_grid = 1 << 30;
    const unsigned grid = static_cast<unsigned>(p.a.n_rows < max_grid ? p.a.n_rows : max_grid);
    if (p.a.out_entropy)
        logprob_rows<T, true><<<grid, threads, 0, stream>>>(p);
    else
        logprob_rows<T, false><<<grid, threads, 0, stream>>>(p);
    return cudaGetLastError();
}

}  // namespace

cudaError_t launch_logprobs(const LogprobArgs& a, cudaStream_t stream) {
    if (a.n_rows == 0) return cudaSuccess;
    Params p;
    p.a = a;
    p.mode = a.has_softcap ? 2 : (a.has_scale ? 1 : 0);
    p.cap = a.softcap;
    p.mul = a.has_softcap ? static_cast<float>((a.has_scale ? static_cast<double>(a.scale) : 1.0) /
                                               static_cast<double>(a.softcap))
                          : a.scale;
    switch (a.dtype) {
        case kFloat32:
            return launch_t<float>(p, stream);
        case kBFloat16:
            return launch_t<bf16_tag>(p, stream);
        case kFloat16:
            return launch_t<f16_tag>(p, stream);
        default:
            return cudaErrorInvalidValue;
    }
}

}  // namespace cuda_impl
}  // namespace pylogmap
