/*
 * kernels/cuda/rope.cu — rotary embedding in place, Hugging Face rotate_half
 * layout: pair p of a head row is (x[p], x[p + hd/2]), rotated by the angle
 * of (t, p) whose (cos, sin) is cs[t][p] (cs: (T, hd/2, 2) floats).
 *
 * Fast path: a thread takes V consecutive pairs of one (b, t, head) row — V
 * = 8 for bf16, 4 for fp32: one 16-byte load and store of each half, the V
 * (cos, sin) pairs as 2V floats in 16-byte loads. Threads are ordered pairs
 * fastest, then heads, then positions, so a block's threads share cs rows in
 * L1. It needs hd even, hd/2 a multiple of V and x and cs 16-byte aligned; otherwise,
 * or beyond 2^31 threads, the scalar grid-stride loop (one pair a thread).
 * Both compute each element with the same expression (rot1), bit for bit.
 */
#include "cuda/common.cuh"

/* Each product rounded on its own, no fused multiply-add: the CPU reference's
 * arithmetic, and the same bits whichever way the compiler would contract. */
__device__ __forceinline__ void rot1(float &oa, float &ob, float a, float b, float co, float si) {
    oa = __fsub_rn(__fmul_rn(a, co), __fmul_rn(b, si));
    ob = __fadd_rn(__fmul_rn(b, co), __fmul_rn(a, si));
}

template <typename A, int V>
__global__ void __launch_bounds__(256) rope_vec_k(A *x, const float *cs, unsigned total, unsigned rowv, int T,
                                                  int heads, int half, float sign) {
    unsigned i = blockIdx.x * 256u + threadIdx.x;
    if (i >= total) return;
    unsigned row = i / rowv, p = (i - row * rowv) * V; /* row: (b, t, head) */
    int t = (int)((row / (unsigned)heads) % (unsigned)T);
    const float4 *c4 = (const float4 *)(cs + ((int64_t)t * half + p) * 2);
    float c[2 * V];
#pragma unroll
    for (int k = 0; k < V / 2; k++) {
        float4 q = __ldg(c4 + k);
        c[4 * k] = q.x, c[4 * k + 1] = q.y, c[4 * k + 2] = q.z, c[4 * k + 3] = q.w;
    }
    A *xh = x + (int64_t)row * (2 * half); /* hd = 2 half on this path */
    actv<A, V> a = ldv<V>(xh, p), b = ldv<V>(xh, p + half), oa, ob;
#pragma unroll
    for (int e = 0; e < V; e++) {
        float ra, rb;
        rot1(ra, rb, tof(a.v[e]), tof(b.v[e]), c[2 * e], sign * c[2 * e + 1]);
        setf(oa.v[e], ra);
        setf(ob.v[e], rb);
    }
    stv<V>(xh, p, oa);
    stv<V>(xh, p + half, ob);
}

template <typename A>
__global__ void rope_k(A *x, const float *cs, int64_t B, int T, int heads, int hd, float sign) {
    int half = hd / 2;
    int64_t total = B * T * heads * half;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int p = (int)(i % half);
        int64_t bth = i / half, bt = bth / heads;
        int t = (int)(bt % T);
        float co = cs[((int64_t)t * half + p) * 2], si = sign * cs[((int64_t)t * half + p) * 2 + 1];
        A *xh = x + bth * hd;
        float ra, rb;
        rot1(ra, rb, ld(xh, p), ld(xh, p + half), co, si);
        st(xh, p, ra);
        st(xh, p + half, rb);
    }
}

extern "C" int cuda_rope(ms_cuda_stream s, int bf16f, void *x, const float *cs, int64_t B, int T, int heads, int hd,
                         float sign) {
    int half = hd / 2;
    int64_t pairs = B * T * heads * half;
    if (pairs <= 0) return 0;
    ACT_DISPATCH(bf16f, {
        constexpr int W = VW<A>::n;
        int64_t total = pairs / W;
        if (hd % 2 == 0 && half % W == 0 && aligned_to(16, x, cs) && total <= (int64_t)INT32_MAX - 256)
            rope_vec_k<A, W><<<(unsigned)((total + 255) / 256), 256, 0, s>>>((A *)x, cs, (unsigned)total,
                                                                             (unsigned)(half / W), T, heads, half,
                                                                             sign);
        else
            rope_k<A><<<blocks_for(pairs, 256), 256, 0, s>>>((A *)x, cs, B, T, heads, hd, sign);
    });
    return launched();
}
