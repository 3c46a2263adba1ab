/*
 * kernels/cuda/swiglu.cu — h = silu(gate) * up and its backward, elementwise.
 *
 * Fast path: one 16-byte vector per thread (8 bf16 or 4 floats, when every
 * pointer is 16-byte aligned; else V = 1), 32-bit indices, one block of 256
 * threads per 256 vectors and no loop; the n % V tail elements go to the
 * threads after the last vector, one each. Above 2^31 threads the plain
 * 64-bit grid-stride loop. Every element is computed by the same expression
 * (fwd1 / bwd1) on every path, so the paths agree bit for bit.
 */
#include "cuda/common.cuh"

__device__ __forceinline__ float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }
__device__ __forceinline__ float fwd1(float g, float u) { return g * sigmoid(g) * u; }
__device__ __forceinline__ void bwd1(float &dg, float &du, float d, float g, float u) {
    float s = sigmoid(g);
    du = d * g * s;
    dg = d * u * s * (1.0f + g * (1.0f - s));
}

template <typename A, int V>
__global__ void __launch_bounds__(256) swiglu_fwd_k(A *h, const A *gate, const A *up, unsigned nv, unsigned n) {
    unsigned i = blockIdx.x * 256u + threadIdx.x;
    if (i < nv) {
        actv<A, V> g = ldv<V>(gate, (int64_t)i * V), u = ldv<V>(up, (int64_t)i * V), o;
#pragma unroll
        for (int e = 0; e < V; e++) setf(o.v[e], fwd1(tof(g.v[e]), tof(u.v[e])));
        stv<V>(h, (int64_t)i * V, o);
    } else if ((i = nv * V + (i - nv)) < n) {
        st(h, i, fwd1(ld(gate, i), ld(up, i)));
    }
}

template <typename A, int V>
__global__ void __launch_bounds__(256) swiglu_bwd_k(A *dgate, A *dup, const A *dh, const A *gate, const A *up,
                                                    unsigned nv, unsigned n) {
    unsigned i = blockIdx.x * 256u + threadIdx.x;
    if (i < nv) {
        actv<A, V> d = ldv<V>(dh, (int64_t)i * V), g = ldv<V>(gate, (int64_t)i * V), u = ldv<V>(up, (int64_t)i * V);
        actv<A, V> dg, du;
#pragma unroll
        for (int e = 0; e < V; e++) {
            float a, b;
            bwd1(a, b, tof(d.v[e]), tof(g.v[e]), tof(u.v[e]));
            setf(dg.v[e], a);
            setf(du.v[e], b);
        }
        stv<V>(dup, (int64_t)i * V, du);
        stv<V>(dgate, (int64_t)i * V, dg);
    } else if ((i = nv * V + (i - nv)) < n) {
        float a, b;
        bwd1(a, b, ld(dh, i), ld(gate, i), ld(up, i));
        st(dup, i, b);
        st(dgate, i, a);
    }
}

template <typename A>
__global__ void swiglu_fwd_big_k(A *h, const A *gate, const A *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        st(h, i, fwd1(ld(gate, i), ld(up, i)));
}

template <typename A>
__global__ void swiglu_bwd_big_k(A *dgate, A *dup, const A *dh, const A *gate, const A *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float a, b;
        bwd1(a, b, ld(dh, i), ld(gate, i), ld(up, i));
        st(dup, i, b);
        st(dgate, i, a);
    }
}

/* Threads of the fast path for n elements in vectors of v: the vectors, then one per tail element. */
static int64_t fast_threads(int64_t n, int v) { return n / v + n % v; }
#define FAST_MAX ((int64_t)INT32_MAX - 256)

extern "C" int cuda_swiglu_fwd(ms_cuda_stream s, int bf16f, void *h, const void *gate, const void *up, int64_t n) {
    if (n <= 0) return 0;
    bool vec = aligned_to(16, h, gate, up);
    ACT_DISPATCH(bf16f, {
        constexpr int W = VW<A>::n;
        unsigned g = (unsigned)((fast_threads(n, vec ? W : 1) + 255) / 256);
        if (n > FAST_MAX)
            swiglu_fwd_big_k<A><<<blocks_for(n, 256), 256, 0, s>>>((A *)h, (const A *)gate, (const A *)up, n);
        else if (vec)
            swiglu_fwd_k<A, W><<<g, 256, 0, s>>>((A *)h, (const A *)gate, (const A *)up, (unsigned)(n / W), (unsigned)n);
        else
            swiglu_fwd_k<A, 1><<<g, 256, 0, s>>>((A *)h, (const A *)gate, (const A *)up, (unsigned)n, (unsigned)n);
    });
    return launched();
}

extern "C" int cuda_swiglu_bwd(ms_cuda_stream s, int bf16f, void *dgate, void *dup, const void *dh, const void *gate,
                               const void *up, int64_t n) {
    if (n <= 0) return 0;
    bool vec = aligned_to(16, dgate, dup, dh, gate, up);
    ACT_DISPATCH(bf16f, {
        constexpr int W = VW<A>::n;
        unsigned g = (unsigned)((fast_threads(n, vec ? W : 1) + 255) / 256);
        if (n > FAST_MAX)
            swiglu_bwd_big_k<A><<<blocks_for(n, 256), 256, 0, s>>>((A *)dgate, (A *)dup, (const A *)dh,
                                                                   (const A *)gate, (const A *)up, n);
        else if (vec)
            swiglu_bwd_k<A, W><<<g, 256, 0, s>>>((A *)dgate, (A *)dup, (const A *)dh, (const A *)gate,
                                                 (const A *)up, (unsigned)(n / W), (unsigned)n);
        else
            swiglu_bwd_k<A, 1><<<g, 256, 0, s>>>((A *)dgate, (A *)dup, (const A *)dh, (const A *)gate,
                                                 (const A *)up, (unsigned)n, (unsigned)n);
    });
    return launched();
}
