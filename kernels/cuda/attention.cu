/*
 * kernels/cuda/attention.cu — causal GQA attention with an online softmax, the
 * plain way: fp32 CUDA cores, no tensor cores. bf16 calls with head dims 64 and
 * 128 go to the tensor-core kernels of attention_flash.cu instead; these stay
 * for the fp32 backend (whose 1e-4 tolerance bf16 tensor cores cannot meet)
 * and other head dims. Memory O(T): the forward keeps lse (B, H, T) only.
 *
 * Forward and dq: a block of NW warps takes NW consecutive query rows of one
 * (b, h); each warp owns one row, each lane one key of a 32-key tile (its score
 * is a whole dot product) and hd/32 output dims. K/V tiles are staged in shared
 * memory as fp32 (rows padded by one float against bank conflicts).
 * dk/dv: a block takes NW consecutive key rows of one (b, kv head), walks the
 * group's query heads and all later queries in tiles of 32, so each kv row is
 * written once (=) by its warp and needs no atomics. D_t = dout_t . out_t comes
 * from a small kernel first.
 * Document masking: row t attends keys doc_start[b, t] <= s <= t.
 * head_dim up to 128.
 */
#include "cuda/common.cuh"

#define NW 8     /* warps per block */
#define TK 32    /* keys (or queries) per tile */
#define MAXHD 128

/* Stage rows [r0, r0 + TK) of a (B, T, heads, hd) tensor's head hh into sh (TK, hd + pad). */
template <typename A>
__device__ void stage(float *sh, int pitch, const A *x, int64_t b, int T, int heads, int hh, int hd, int r0, int rmax) {
    for (int idx = threadIdx.x; idx < TK * hd; idx += blockDim.x) {
        int r = idx / hd, c = idx % hd, t = r0 + r;
        sh[r * pitch + c] = t <= rmax ? ld(x, ((b * T + t) * heads + hh) * (int64_t)hd + c) : 0.0f;
    }
}

template <typename A, int NI>
__global__ void __launch_bounds__(NW * 32) attn_fwd_k(A *out, float *lse, const A *q, const A *k, const A *v,
                                                      const int32_t *doc, int T, int H, int KV, int hd) {
    __shared__ float Ks[TK * (MAXHD + 1)], Vs[TK * (MAXHD + 1)], Qs[NW * MAXHD];
    __shared__ int lo_sh;
    int b = blockIdx.z, h = blockIdx.y, g = h / (H / KV), w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int t0 = blockIdx.x * NW, t = t0 + w, pitch = hd + 1;
    bool valid = t < T;
    int first = valid && doc ? doc[(int64_t)b * T + t] : 0;
    int hi = min(t0 + NW - 1, T - 1);
    if (threadIdx.x == 0) lo_sh = T;
    __syncthreads();
    if (valid && lane == 0) atomicMin(&lo_sh, first);
    for (int d = lane; d < hd; d += 32) Qs[w * MAXHD + d] = valid ? ld(q, (((int64_t)b * T + t) * H + h) * hd + d) : 0.0f;
    __syncthreads();
    int lo = lo_sh;
    float scale = rsqrtf((float)hd), m = -INFINITY, l = 0.0f, o[NI];
#pragma unroll
    for (int i = 0; i < NI; i++) o[i] = 0.0f;
    for (int s0 = lo / TK * TK; s0 <= hi; s0 += TK) {
        stage(Ks, pitch, k, b, T, KV, g, hd, s0, hi);
        stage(Vs, pitch, v, b, T, KV, g, hd, s0, hi);
        __syncthreads();
        if (valid) {
            int s = s0 + lane;
            float sc = -INFINITY;
            if (s >= first && s <= t) {
                float acc = 0.0f;
                const float *kr = Ks + lane * pitch, *qr = Qs + w * MAXHD;
                for (int d = 0; d < hd; d++) acc += qr[d] * kr[d];
                sc = acc * scale;
            }
            float tm = warp_max(sc);
            if (tm > -INFINITY) {
                float mn = fmaxf(m, tm), corr = expf(m - mn);
                float p = expf(sc - mn);
                l = l * corr + warp_sum(p);
                m = mn;
#pragma unroll
                for (int i = 0; i < NI; i++) o[i] *= corr;
                for (int j = 0; j < TK; j++) {
                    float pj = __shfl_sync(0xffffffffu, p, j);
                    if (pj != 0.0f) {
#pragma unroll
                        for (int i = 0; i < NI; i++) {
                            int d = lane + 32 * i;
                            if (d < hd) o[i] += pj * Vs[j * pitch + d];
                        }
                    }
                }
            }
        }
        __syncthreads();
    }
    if (!valid) return;
    int64_t row = (((int64_t)b * T + t) * H + h) * hd;
#pragma unroll
    for (int i = 0; i < NI; i++) {
        int d = lane + 32 * i;
        if (d < hd) st(out, row + d, o[i] / l);
    }
    if (lane == 0) lse[((int64_t)b * H + h) * T + t] = m + logf(l);
}

/* D = rowsum(dout * out), written (B, H, T). Fast path: G = hd / V lanes a row (G a power of two up to 32; V
 * = 8 bf16 or 4 floats, one 16-byte load of each), rows taken t fastest so the writes are contiguous; each lane
 * sums its V products in order, then the G lanes reduce by xor shuffles. Else a warp a row, a lane every 32nd. */
template <typename A, int V>
__global__ void __launch_bounds__(256) attn_delta_vec_k(float *delta, const A *dout, const A *out, unsigned rows,
                                                        int T, int H, int hd) {
    int G = hd / V, lane = threadIdx.x & (G - 1);
    unsigned i = (blockIdx.x * 256u + threadIdx.x) / (unsigned)G; /* (b, h, t) */
    float acc = 0.0f;
    if (i < rows) {
        unsigned t = i % (unsigned)T, bh = i / (unsigned)T, h = bh % (unsigned)H, b = bh / (unsigned)H;
        int64_t r = (((int64_t)b * T + t) * H + h) * hd + lane * V;
        actv<A, V> g = ldv<V>(dout, r), o = ldv<V>(out, r);
#pragma unroll
        for (int e = 0; e < V; e++) acc += tof(g.v[e]) * tof(o.v[e]);
    }
    for (int o = G >> 1; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (i < rows && lane == 0) delta[i] = acc;
}

template <typename A>
__global__ void attn_delta_k(float *delta, const A *dout, const A *out, int B, int T, int H, int hd) {
    int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (r >= (int64_t)B * T * H) return;
    float acc = 0.0f;
    for (int d = lane; d < hd; d += 32) acc += ld(dout, r * hd + d) * ld(out, r * hd + d);
    acc = warp_sum(acc);
    int h = (int)(r % H);
    int64_t bt = r / H, b = bt / T, t = bt % T;
    if (lane == 0) delta[(b * H + h) * T + t] = acc;
}

template <typename A>
static void attn_delta(ms_cuda_stream s, float *delta, const A *dout, const A *out, int B, int T, int H, int hd) {
    constexpr int W = VW<A>::n;
    int64_t rows = (int64_t)B * T * H, G = hd / W;
    if (hd % W == 0 && G <= 32 && (G & (G - 1)) == 0 && aligned_to(16, dout, out) && rows * G <= INT32_MAX - 256)
        attn_delta_vec_k<A, W><<<(unsigned)((rows * G + 255) / 256), 256, 0, s>>>(delta, dout, out, (unsigned)rows,
                                                                                 T, H, hd);
    else
        attn_delta_k<A><<<(unsigned)((rows * 32 + 255) / 256), 256, 0, s>>>(delta, dout, out, B, T, H, hd);
}

/* The D kernel alone, for kernels/bench/elementwise.c (not in kernels.h: attention_bwd runs it itself). */
extern "C" int cuda_attention_delta(ms_cuda_stream s, int bf16f, float *delta, const void *dout, const void *out,
                                    int B, int T, int H, int hd) {
    ACT_DISPATCH(bf16f, attn_delta<A>(s, delta, (const A *)dout, (const A *)out, B, T, H, hd));
    return launched();
}

template <typename A, int NI>
__global__ void __launch_bounds__(NW * 32) attn_dq_k(A *dq, const A *dout, const A *q, const A *k, const A *v,
                                                     const float *lse, const float *delta, const int32_t *doc, int T,
                                                     int H, int KV, int hd) {
    __shared__ float Ks[TK * (MAXHD + 1)], Vs[TK * (MAXHD + 1)], Qs[NW * MAXHD], Gs[NW * MAXHD];
    __shared__ int lo_sh;
    int b = blockIdx.z, h = blockIdx.y, g = h / (H / KV), w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int t0 = blockIdx.x * NW, t = t0 + w, pitch = hd + 1;
    bool valid = t < T;
    int first = valid && doc ? doc[(int64_t)b * T + t] : 0;
    int hi = min(t0 + NW - 1, T - 1);
    if (threadIdx.x == 0) lo_sh = T;
    __syncthreads();
    if (valid && lane == 0) atomicMin(&lo_sh, first);
    int64_t row = (((int64_t)b * T + t) * H + h) * hd;
    for (int d = lane; d < hd; d += 32) {
        Qs[w * MAXHD + d] = valid ? ld(q, row + d) : 0.0f;
        Gs[w * MAXHD + d] = valid ? ld(dout, row + d) : 0.0f;
    }
    __syncthreads();
    int lo = lo_sh;
    float scale = rsqrtf((float)hd), L = 0.0f, D = 0.0f, acc[NI];
    if (valid) {
        L = lse[((int64_t)b * H + h) * T + t];
        D = delta[((int64_t)b * H + h) * T + t];
    }
#pragma unroll
    for (int i = 0; i < NI; i++) acc[i] = 0.0f;
    for (int s0 = lo / TK * TK; s0 <= hi; s0 += TK) {
        stage(Ks, pitch, k, b, T, KV, g, hd, s0, hi);
        stage(Vs, pitch, v, b, T, KV, g, hd, s0, hi);
        __syncthreads();
        if (valid) {
            int s = s0 + lane;
            float ds = 0.0f;
            if (s >= first && s <= t) {
                float sc = 0.0f, dp = 0.0f;
                const float *kr = Ks + lane * pitch, *vr = Vs + lane * pitch, *qr = Qs + w * MAXHD, *gr = Gs + w * MAXHD;
                for (int d = 0; d < hd; d++) { sc += qr[d] * kr[d]; dp += gr[d] * vr[d]; }
                float p = expf(sc * scale - L);
                ds = p * (dp - D) * scale;
            }
            for (int j = 0; j < TK; j++) {
                float dj = __shfl_sync(0xffffffffu, ds, j);
                if (dj != 0.0f) {
#pragma unroll
                    for (int i = 0; i < NI; i++) {
                        int d = lane + 32 * i;
                        if (d < hd) acc[i] += dj * Ks[j * pitch + d];
                    }
                }
            }
        }
        __syncthreads();
    }
    if (!valid) return;
#pragma unroll
    for (int i = 0; i < NI; i++) {
        int d = lane + 32 * i;
        if (d < hd) st(dq, row + d, acc[i]);
    }
}

template <typename A, int NI>
__global__ void __launch_bounds__(NW * 32) attn_dkdv_k(A *dk, A *dv, const A *dout, const A *q, const A *k, const A *v,
                                                       const float *lse, const float *delta, const int32_t *doc, int T,
                                                       int H, int KV, int hd) {
    __shared__ float Qs[TK * (MAXHD + 1)], Gs[TK * (MAXHD + 1)], Kw[NW * MAXHD], Vw[NW * MAXHD];
    __shared__ float Ls[TK], Ds[TK];
    __shared__ int Fs[TK];
    int b = blockIdx.z, g = blockIdx.y, group = H / KV, w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int s0 = blockIdx.x * NW, s = s0 + w, pitch = hd + 1;
    bool valid = s < T;
    int64_t row = (((int64_t)b * T + s) * KV + g) * hd;
    for (int d = lane; d < hd; d += 32) {
        Kw[w * MAXHD + d] = valid ? ld(k, row + d) : 0.0f;
        Vw[w * MAXHD + d] = valid ? ld(v, row + d) : 0.0f;
    }
    float scale = rsqrtf((float)hd), ak[NI], av[NI];
#pragma unroll
    for (int i = 0; i < NI; i++) ak[i] = av[i] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++) {
        for (int t0 = s0 / TK * TK; t0 < T; t0 += TK) {
            __syncthreads();
            stage(Qs, pitch, q, b, T, H, h, hd, t0, T - 1);
            stage(Gs, pitch, dout, b, T, H, h, hd, t0, T - 1);
            if (threadIdx.x < TK) {
                int tt = t0 + threadIdx.x;
                bool in = tt < T;
                Ls[threadIdx.x] = in ? lse[((int64_t)b * H + h) * T + tt] : 0.0f;
                Ds[threadIdx.x] = in ? delta[((int64_t)b * H + h) * T + tt] : 0.0f;
                Fs[threadIdx.x] = in ? (doc ? doc[(int64_t)b * T + tt] : 0) : T;
            }
            __syncthreads();
            if (!valid) continue;
            int t = t0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (t < T && t >= s && Fs[lane] <= s) {
                float sc = 0.0f, dp = 0.0f;
                const float *qr = Qs + lane * pitch, *gr = Gs + lane * pitch, *kr = Kw + w * MAXHD, *vr = Vw + w * MAXHD;
                for (int d = 0; d < hd; d++) { sc += qr[d] * kr[d]; dp += gr[d] * vr[d]; }
                p = expf(sc * scale - Ls[lane]);
                ds = p * (dp - Ds[lane]) * scale;
            }
            for (int j = 0; j < TK; j++) {
                float pj = __shfl_sync(0xffffffffu, p, j), dj = __shfl_sync(0xffffffffu, ds, j);
                if (pj != 0.0f || dj != 0.0f) {
#pragma unroll
                    for (int i = 0; i < NI; i++) {
                        int d = lane + 32 * i;
                        if (d < hd) {
                            av[i] += pj * Gs[j * pitch + d];
                            ak[i] += dj * Qs[j * pitch + d];
                        }
                    }
                }
            }
        }
    }
    if (!valid) return;
#pragma unroll
    for (int i = 0; i < NI; i++) {
        int d = lane + 32 * i;
        if (d < hd) {
            st(dk, row + d, ak[i]);
            st(dv, row + d, av[i]);
        }
    }
}

#define NI_DISPATCH(hd, ...)                                   \
    do {                                                       \
        if ((hd) <= 32) { constexpr int NI = 1; __VA_ARGS__; } \
        else if ((hd) <= 64) { constexpr int NI = 2; __VA_ARGS__; } \
        else { constexpr int NI = 4; __VA_ARGS__; }            \
    } while (0)

/* The flash kernels copy 16-byte chunks: every pointer must allow that. */
static bool flash_ok(int bf16f, int hd, int H, int KV, const void *a, const void *b, const void *c, const void *d,
                     const void *e = nullptr, const void *f = nullptr, const void *g = nullptr) {
    uintptr_t bits = (uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d | (uintptr_t)e | (uintptr_t)f |
                     (uintptr_t)g;
    return cuda_flash_supported(bf16f, hd, H, KV) && (bits & 15) == 0;
}

extern "C" int cuda_attention_plain_fwd(ms_cuda_stream s, int bf16f, void *out, float *lse, const void *q,
                                        const void *k, const void *v, const int32_t *doc, int B, int T, int H, int KV,
                                        int hd) {
    if (hd > MAXHD || hd < 1 || KV < 1 || H % KV) return (int)cudaErrorInvalidValue;
    dim3 grid((T + NW - 1) / NW, H, B);
    ACT_DISPATCH(bf16f, NI_DISPATCH(hd, attn_fwd_k<A, NI><<<grid, NW * 32, 0, s>>>(
                                            (A *)out, lse, (const A *)q, (const A *)k, (const A *)v, doc, T, H, KV, hd)));
    return launched();
}

extern "C" int cuda_attention_fwd(ms_cuda_stream s, int bf16f, void *out, float *lse, const void *q, const void *k,
                                  const void *v, const int32_t *doc, int B, int T, int H, int KV, int hd) {
    if (flash_ok(bf16f, hd, H, KV, out, q, k, v)) return cuda_flash_fwd(s, out, lse, q, k, v, doc, B, T, H, KV, hd);
    return cuda_attention_plain_fwd(s, bf16f, out, lse, q, k, v, doc, B, T, H, KV, hd);
}

/* bwd with a choice: flash (tensor cores) when allowed and the call qualifies, else the plain kernels. */
static int attention_bwd(ms_cuda_stream s, int bf16f, void *dq, void *dk, void *dv, const void *dout, const void *q,
                         const void *k, const void *v, const void *out, const float *lse, void *work,
                         const int32_t *doc, int B, int T, int H, int KV, int hd, bool allow_flash) {
    float *delta = (float *)work;
    if (hd > MAXHD || hd < 1 || KV < 1 || H % KV) return (int)cudaErrorInvalidValue;
    dim3 gq((T + NW - 1) / NW, H, B), gk((T + NW - 1) / NW, KV, B);
    int e;
    ACT_DISPATCH(bf16f, {
        attn_delta<A>(s, delta, (const A *)dout, (const A *)out, B, T, H, hd);
        if ((e = launched())) return e;
        if (allow_flash && flash_ok(bf16f, hd, H, KV, dq, dk, dv, dout, q, k, v))
            return cuda_flash_bwd(s, dq, dk, dv, dout, q, k, v, lse, work, doc, B, T, H, KV, hd);
        NI_DISPATCH(hd, attn_dq_k<A, NI><<<gq, NW * 32, 0, s>>>((A *)dq, (const A *)dout, (const A *)q, (const A *)k,
                                                                (const A *)v, lse, delta, doc, T, H, KV, hd));
        if ((e = launched())) return e;
        NI_DISPATCH(hd, attn_dkdv_k<A, NI><<<gk, NW * 32, 0, s>>>((A *)dk, (A *)dv, (const A *)dout, (const A *)q,
                                                                  (const A *)k, (const A *)v, lse, delta, doc, T, H, KV, hd));
    });
    return launched();
}

extern "C" int cuda_attention_bwd(ms_cuda_stream s, int bf16f, void *dq, void *dk, void *dv, const void *dout,
                                  const void *q, const void *k, const void *v, const void *out, const float *lse,
                                  void *work, const int32_t *doc, int B, int T, int H, int KV, int hd) {
    return attention_bwd(s, bf16f, dq, dk, dv, dout, q, k, v, out, lse, work, doc, B, T, H, KV, hd, true);
}

extern "C" int cuda_attention_plain_bwd(ms_cuda_stream s, int bf16f, void *dq, void *dk, void *dv, const void *dout,
                                        const void *q, const void *k, const void *v, const void *out,
                                        const float *lse, void *work, const int32_t *doc, int B, int T, int H,
                                        int KV, int hd) {
    return attention_bwd(s, bf16f, dq, dk, dv, dout, q, k, v, out, lse, work, doc, B, T, H, KV, hd, false);
}
