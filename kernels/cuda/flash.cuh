/*
 * kernels/cuda/flash.cuh — what the two flash attention files share: the
 * softmax's exponential, cp.async groups, accumulator-to-fragment packing, quad
 * reductions, the documents' first key of a block, and the bf16 row store.
 *
 * Both files lay a warp's accumulators out as mma.sync m16n8k16 does (and
 * wgmma, per warp of its warpgroup): acc[n][0..1] hold row gi = lane / 4,
 * columns 8 n + 2 ti + {0, 1} (ti = lane % 4); acc[n][2..3] row gi + 8.
 */
#ifndef MS_KERNELS_CUDA_FLASH_CUH
#define MS_KERNELS_CUDA_FLASH_CUH
#include "cuda/common.cuh"

namespace flash {

constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

__device__ __forceinline__ uint32_t sm(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 2^x on the special-function unit (2^-inf = 0); the softmax's only transcendental */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* 16 bytes global -> shared, zero-filled when !ok */
__device__ __forceinline__ void cp16(void *sh, const void *g, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(sm(sh)), "l"(g), "r"(ok ? 16 : 0));
}
/* 4 bytes global -> shared, zero-filled when !ok */
__device__ __forceinline__ void cp4(void *sh, const void *g, bool ok) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(sm(sh)), "l"(g), "r"(ok ? 4 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* A fragments (bf16) of the 16 x 16 slab ks of a 16 x N accumulator. */
__device__ __forceinline__ void acc_to_a(uint32_t *a, const float (*s)[4], int ks) {
    a[0] = pack(s[2 * ks][0], s[2 * ks][1]);
    a[1] = pack(s[2 * ks][2], s[2 * ks][3]);
    a[2] = pack(s[2 * ks + 1][0], s[2 * ks + 1][1]);
    a[3] = pack(s[2 * ks + 1][2], s[2 * ks + 1][3]);
}

__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* The smallest document start among the block's rows [r0, r0 + rows) (0 without documents). */
__device__ __forceinline__ int block_first(const int32_t *doc, int64_t b, int T, int r0, int rows, int *sh) {
    if (!doc) return 0;
    if (threadIdx.x == 0) *sh = T;
    __syncthreads();
    int f = T;
    for (int r = threadIdx.x; r < rows; r += blockDim.x)
        if (r0 + r < T) f = min(f, doc[b * T + r0 + r]);
    atomicMin(sh, f);
    __syncthreads();
    return *sh;
}

/* Masks a 16 x N score tile of keys k0.. for rows ra, ra + 8 (document starts
 * fa, fb): -inf where the key is after the row or before its document. */
template <int N>
__device__ __forceinline__ void mask_rows(float (*s)[4], int k0, int ra, int fa, int fb) {
    int ti = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < N / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int key = k0 + n * 8 + 2 * ti + (e & 1), row = e < 2 ? ra : ra + 8, f = e < 2 ? fa : fb;
            if (key > row || key < f) s[n][e] = -INFINITY;
        }
}

/* Scales the rows ra (by c.x) and ra + 8 (by c.y) of a 16 x HD accumulator;
 * skipped when no row of the warp changed its maximum (every factor is 1). */
template <int HD>
__device__ __forceinline__ void scale_rows(float (*o)[4], float2 c) {
    if (!__any_sync(0xffffffffu, c.x != 1.0f || c.y != 1.0f)) return;
#pragma unroll
    for (int n = 0; n < HD / 8; n++) {
        o[n][0] *= c.x;
        o[n][1] *= c.x;
        o[n][2] *= c.y;
        o[n][3] *= c.y;
    }
}

/* dq's tile: s (scores) and dp (dO V^T) of rows ra, ra + 8 over keys k0..
 * become dS = P (dP - D) in s, P = 2^(s scale_log2 - L) recomputed from the
 * rows' log2-domain lse L; masked as mask_rows when masked. */
template <int N>
__device__ __forceinline__ void dq_ds(float (*s)[4], const float (*dp)[4], int k0, int ra, int fa, int fb, float La,
                                      float Lb, float Da, float Db, bool masked, float scale_log2) {
    if (masked) mask_rows<N>(s, k0, ra, fa, fb);
#pragma unroll
    for (int n = 0; n < N / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            s[n][e] = ex2(s[n][e] * scale_log2 - (e < 2 ? La : Lb)) * (dp[n][e] - (e < 2 ? Da : Db));
}

/* dk/dv's per-query values of query rows t0 .. t0 + N of head h into shared
 * memory, by cp.async (part of the caller's next group): lse, D and the
 * document start (0 without documents); zeros past T, where kv_p masks. */
template <int N>
__device__ __forceinline__ void load_query_values(float *Ls, float *Ds, int *Fs, const float *lse, const float *delta,
                                                  const int32_t *doc, int64_t b, int64_t h, int H, int T, int t0) {
    for (int r = threadIdx.x; r < N; r += blockDim.x) {
        int t = t0 + r;
        bool in = t < T;
        int64_t at = in ? (b * H + h) * T + t : 0;
        cp4(Ls + r, lse + at, in);
        cp4(Ds + r, delta + at, in);
        cp4(Fs + r, doc ? (const void *)(doc + b * T + (in ? t : 0)) : (const void *)lse, in && doc);
    }
}

/* dk/dv's tile, transposed: s (K Q^T) of keys ca, ca + 8 over queries t0..t0+N
 * becomes P^T, from the queries' lse Ls, masked (when masked) where the query
 * is before the key, at or past T, or in a document after the key (Fs: the
 * queries' document starts). */
template <int N>
__device__ __forceinline__ void kv_p(float (*s)[4], const float *Ls, const int *Fs, int t0, int ca, int T, bool masked,
                                     float scale_log2) {
    int ti = threadIdx.x & 3;
    if (masked) {
#pragma unroll
        for (int n = 0; n < N / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = e < 2 ? ca : ca + 8, rr = n * 8 + 2 * ti + (e & 1);
                if (t0 + rr < key || t0 + rr >= T || Fs[rr] > key) s[n][e] = -INFINITY;
            }
    }
#pragma unroll
    for (int n = 0; n < N / 8; n++) { /* queries r, r + 1: one 8-byte read of each per-query value */
        float2 L = *reinterpret_cast<const float2 *>(&Ls[n * 8 + 2 * ti]);
#pragma unroll
        for (int e = 0; e < 4; e++) s[n][e] = ex2(s[n][e] * scale_log2 - (e & 1 ? L.y : L.x) * LOG2E);
    }
}

/* dS^T = P^T (dP^T - D) in place of dp, D the queries' rowsum(dO O). */
template <int N>
__device__ __forceinline__ void kv_ds(float (*dp)[4], const float (*p)[4], const float *Ds) {
    int ti = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < N / 8; n++) {
        float2 D = *reinterpret_cast<const float2 *>(&Ds[n * 8 + 2 * ti]);
#pragma unroll
        for (int e = 0; e < 4; e++) dp[n][e] = p[n][e] * (dp[n][e] - (e & 1 ? D.y : D.x));
    }
}

/* Store a 16 x HD accumulator's rows ra, ra + 8 (times mul) as bf16 into a (T, ld) matrix. */
template <int HD>
__device__ __forceinline__ void store_rows(bf16 *g, int64_t ld, const float (*acc)[4], int ra, int T, float mul_a,
                                           float mul_b) {
    int ti = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < HD / 8; n++) {
        int col = n * 8 + 2 * ti;
        if (ra < T)
            *reinterpret_cast<__nv_bfloat162 *>(g + (int64_t)ra * ld + col) =
                __floats2bfloat162_rn(acc[n][0] * mul_a, acc[n][1] * mul_a);
        if (ra + 8 < T)
            *reinterpret_cast<__nv_bfloat162 *>(g + (int64_t)(ra + 8) * ld + col) =
                __floats2bfloat162_rn(acc[n][2] * mul_b, acc[n][3] * mul_b);
    }
}

/* One online-softmax step for a warp's rows ra (a) and rb (b) over the key
 * tile in s (16 x N scores, masked entries -inf): updates the running max m
 * (log2 domain) and sum l, turns s into the unnormalised probabilities, and
 * returns the factors the old output rows must be scaled by. */
template <int N>
__device__ __forceinline__ float2 softmax_step(float (*s)[4], float &ma, float &mb, float &la, float &lb,
                                               float scale_log2) {
    float xa = -INFINITY, xb = -INFINITY;
#pragma unroll
    for (int n = 0; n < N / 8; n++) {
        xa = fmaxf(xa, fmaxf(s[n][0], s[n][1]));
        xb = fmaxf(xb, fmaxf(s[n][2], s[n][3]));
    }
    float na = fmaxf(ma, quad_max(xa) * scale_log2), nb = fmaxf(mb, quad_max(xb) * scale_log2);
    float ba = na == -INFINITY ? 0.0f : na, bb = nb == -INFINITY ? 0.0f : nb;
    float ca = ex2(ma - ba), cb = ex2(mb - bb), sa = 0.0f, sb = 0.0f;
#pragma unroll
    for (int n = 0; n < N / 8; n++) {
        s[n][0] = ex2(s[n][0] * scale_log2 - ba);
        s[n][1] = ex2(s[n][1] * scale_log2 - ba);
        s[n][2] = ex2(s[n][2] * scale_log2 - bb);
        s[n][3] = ex2(s[n][3] * scale_log2 - bb);
        sa += s[n][0] + s[n][1];
        sb += s[n][2] + s[n][3];
    }
    la = la * ca + sa;
    lb = lb * cb + sb;
    ma = na;
    mb = nb;
    return make_float2(ca, cb);
}

/* The forward's epilogue: out rows divided by the sums, lse = m + log2(l) in natural log. */
template <int HD>
__device__ __forceinline__ void finish_rows(bf16 *out, int64_t ld, float *lse_row, const float (*o)[4], int ra, int T,
                                            float ma, float mb, float la, float lb) {
    la = quad_sum(la);
    lb = quad_sum(lb);
    store_rows<HD>(out, ld, o, ra, T, la > 0 ? 1.0f / la : 0.0f, lb > 0 ? 1.0f / lb : 0.0f);
    if ((threadIdx.x & 3) == 0) {
        if (ra < T) lse_row[ra] = (ma + log2f(la)) * LN2;
        if (ra + 8 < T) lse_row[ra + 8] = (mb + log2f(lb)) * LN2;
    }
}

} // namespace flash
#endif
