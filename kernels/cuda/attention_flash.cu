/*
 * kernels/cuda/attention_flash.cu — causal GQA flash attention on tensor cores,
 * bf16 in and out, fp32 accumulation, head dims 64 and 128 (sm_80 and later).
 *
 * The algorithm (Dao's FlashAttention-2), phrased for mma.sync m16n8k16:
 * - forward: a block takes BM = 16 * NW query rows of one (b, h), a warp 16 of
 *   them; key/value tiles of KN rows stream through shared memory (cp.async,
 *   two buffers, the next tile loading while this one computes). S = Q K^T and
 *   O += P V run on tensor cores; the softmax is online (running max m and sum
 *   l per row, in the log2 domain), P goes from the S accumulators straight
 *   into A fragments without touching shared memory. Keeps lse (B, H, T) only.
 * - backward, two kernels and no atomics (deterministic): dq walks key tiles
 *   for a query tile (S, dP = dO V^T, dS = P (dP - D), dQ += dS K); dk/dv walks
 *   the query tiles of every query head of its kv head for a key tile
 *   (S^T = K Q^T, dV += P^T dO, dP^T = V dO^T, dK += dS^T Q). D = rowsum(dO * O)
 *   comes from attention.cu's small kernel.
 * - masking: row t sees keys doc_start[b, t] <= s <= t (doc_start NULL: 0 <= s
 *   <= t); forward and dq skip the key tiles wholly outside a block's rows, and
 *   every kernel skips the mask on tiles wholly inside.
 * - shared-memory tiles are rows of hd bf16 with their 16-byte chunks XOR-
 *   swizzled by (row & 7), so ldmatrix reads 8 rows without bank conflicts.
 * - block shapes are template parameters; the engine's (FWD_WARPS, FWD_KEYS,
 *   DQ_WARPS, DKDV_WARPS below) are the workbench's fastest on an H200
 *   (kernels/bench/NOTES.md). At hd 64 the operands a warp reuses on every tile
 *   (Q, dO in dq; K, V in dk/dv) stay in registers.
 * - on sm_90 cuda_flash_fwd / _bwd hand over to attention_wgmma.cu, the same
 *   algorithm on warpgroup MMA (its backward at hd 128 one fused kernel, as
 *   repeatable); these kernels serve sm_80 and sm_89.
 * Limits: bf16 only (the fp32 backend keeps attention.cu's exact kernels),
 * hd in {64, 128}, row strides a multiple of 8 elements (16-byte cp.async).
 */
#include "cuda/flash.cuh"

namespace {
using namespace flash;

constexpr int BN = 64; /* keys per tile (and query rows per dk/dv iteration) */

/* element offset of (row, col) in a swizzled tile of HD columns */
template <int HD>
__device__ __forceinline__ int swz(int row, int col) {
    return row * HD + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

/* Rows [r0, r0 + rows) of a (T, ld) bf16 matrix into a swizzled tile; rows at
 * or past T are zero-filled. */
template <int HD>
__device__ __forceinline__ void load_tile(bf16 *sh, const bf16 *g, int64_t ld, int r0, int rows, int T) {
    constexpr int CH = HD / 8;
    for (int i = threadIdx.x; i < rows * CH; i += blockDim.x) {
        int r = i / CH, c = i % CH;
        bool ok = r0 + r < T;
        const bf16 *src = g + (ok ? (int64_t)(r0 + r) * ld : 0) + c * 8;
        cp16(sh + swz<HD>(r, c * 8), src, ok);
    }
}

__device__ __forceinline__ void ldsm(uint32_t *r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_t(uint32_t *r, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* A fragment (16 x 16) of a row-major tile at (r0, k0). */
template <int HD>
__device__ __forceinline__ void frag_a(uint32_t *a, const bf16 *sh, int r0, int k0) {
    int l = threadIdx.x & 31, mat = l >> 3;
    ldsm(a, sm(sh + swz<HD>(r0 + (l & 7) + ((mat & 1) << 3), k0 + ((mat >> 1) << 3))));
}
/* B fragments of two n-tiles (n0, n0 + 8) over k0..k0+15 from a tile stored
 * [n][k]: b[0..1] for n0, b[2..3] for n0 + 8. */
template <int HD>
__device__ __forceinline__ void frag_b(uint32_t *b, const bf16 *sh, int n0, int k0) {
    int l = threadIdx.x & 31, mat = l >> 3;
    ldsm(b, sm(sh + swz<HD>(n0 + (l & 7) + ((mat >> 1) << 3), k0 + ((mat & 1) << 3))));
}
/* The same from a tile stored [k][n] (transposed by ldmatrix). */
template <int HD>
__device__ __forceinline__ void frag_bt(uint32_t *b, const bf16 *sh, int k0, int n0) {
    int l = threadIdx.x & 31, mat = l >> 3;
    ldsm_t(b, sm(sh + swz<HD>(k0 + (l & 7) + ((mat & 1) << 3), n0 + ((mat >> 1) << 3))));
}

__device__ __forceinline__ void mma(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* acc (16 x N, N / 8 n-tiles) += A-tile rows r0.. (16 x HD) times B-tile^T (N x HD stored [n][k]). */
template <int HD, int N>
__device__ __forceinline__ void mm_abt(float (*acc)[4], const bf16 *A, int r0, const bf16 *Bn) {
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        uint32_t a[4];
        frag_a<HD>(a, A, r0, ks * 16);
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            uint32_t b[4];
            frag_b<HD>(b, Bn, np * 16, ks * 16);
            mma(acc[2 * np], a, b[0], b[1]);
            mma(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* The same with A's fragments already in registers (a[HD / 16], from load_a). */
template <int HD, int N>
__device__ __forceinline__ void mm_rbt(float (*acc)[4], const uint32_t (*a)[4], const bf16 *Bn) {
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
#pragma unroll
        for (int np = 0; np < N / 16; np++) {
            uint32_t b[4];
            frag_b<HD>(b, Bn, np * 16, ks * 16);
            mma(acc[2 * np], a[ks], b[0], b[1]);
            mma(acc[2 * np + 1], a[ks], b[2], b[3]);
        }
    }
}

/* A fragments of rows r0..r0+15 of a tile, every 16 columns (HD / 16 of them). */
template <int HD>
__device__ __forceinline__ void load_a(uint32_t (*a)[4], const bf16 *A, int r0) {
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) frag_a<HD>(a[ks], A, r0, ks * 16);
}

/* Whether a kernel keeps a warp's constant A operands in registers: at head
 * dim 64 they fit (16 registers each); at 128 they would spill. */
template <int HD>
struct regs_a_t { static constexpr bool value = HD <= 64; };

/* acc (16 x HD) += P (16 x N, accumulator registers) times B-tile (N x HD stored [k][n]). */
template <int HD, int N>
__device__ __forceinline__ void mm_pb(float (*acc)[4], const float (*p)[4], const bf16 *Bk) {
#pragma unroll
    for (int ks = 0; ks < N / 16; ks++) {
        uint32_t a[4];
        acc_to_a(a, p, ks);
#pragma unroll
        for (int np = 0; np < HD / 16; np++) {
            uint32_t b[4];
            frag_bt<HD>(b, Bk, ks * 16, np * 16);
            mma(acc[2 * np], a, b[0], b[1]);
            mma(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* ---- forward ---------------------------------------------------------------- */

template <int HD, int NW, int KN>
__global__ void __launch_bounds__(NW * 32) flash_fwd_k(bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                                                       const bf16 *v, const int32_t *doc, int T, int H, int KV,
                                                       float scale_log2) {
    constexpr int BM = 16 * NW;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem), *Ks = Qs + BM * HD, *Vs = Ks + 2 * KN * HD;
    __shared__ int first_sh;
    int b = blockIdx.z, h = blockIdx.y, g = h / (H / KV);
    int q0 = (gridDim.x - 1 - blockIdx.x) * BM; /* the longest rows first */
    int w = threadIdx.x >> 5, gi = (threadIdx.x & 31) >> 2;
    int64_t ldq = (int64_t)H * HD, ldk = (int64_t)KV * HD;
    const bf16 *qb = q + (int64_t)b * T * ldq + (int64_t)h * HD;
    const bf16 *kb = k + (int64_t)b * T * ldk + (int64_t)g * HD, *vb = v + (int64_t)b * T * ldk + (int64_t)g * HD;
    int ra = q0 + w * 16 + gi, rb = ra + 8; /* this thread's rows */
    int fa = doc && ra < T ? doc[(int64_t)b * T + ra] : 0, fb = doc && rb < T ? doc[(int64_t)b * T + rb] : 0;
    int lo = block_first(doc, b, T, q0, BM, &first_sh);
    int kt_lo = lo / KN, kt_hi = (min(q0 + BM, T) - 1) / KN;

    load_tile<HD>(Qs, qb, ldq, q0, BM, T);
    load_tile<HD>(Ks, kb, ldk, kt_lo * KN, KN, T);
    load_tile<HD>(Vs, vb, ldk, kt_lo * KN, KN, T);
    cp_commit();
    float o[HD / 8][4], ma = -INFINITY, mb = -INFINITY, la = 0.0f, lb = 0.0f;
#pragma unroll
    for (int n = 0; n < HD / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;

    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        int buf = (kt - kt_lo) & 1;
        if (kt < kt_hi) {
            load_tile<HD>(Ks + (buf ^ 1) * KN * HD, kb, ldk, (kt + 1) * KN, KN, T);
            load_tile<HD>(Vs + (buf ^ 1) * KN * HD, vb, ldk, (kt + 1) * KN, KN, T);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const bf16 *Kt = Ks + buf * KN * HD, *Vt = Vs + buf * KN * HD;
        int k0 = kt * KN;
        float s[KN / 8][4];
#pragma unroll
        for (int n = 0; n < KN / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        mm_abt<HD, KN>(s, Qs, w * 16, Kt);
        if (doc || k0 + KN - 1 > q0 + w * 16) mask_rows<KN>(s, k0, ra, fa, fb);
        scale_rows<HD>(o, softmax_step<KN>(s, ma, mb, la, lb, scale_log2));
        mm_pb<HD, KN>(o, s, Vt);
        __syncthreads();
    }
    finish_rows<HD>(out + (int64_t)b * T * ldq + (int64_t)h * HD, ldq, lse + ((int64_t)b * H + h) * T, o, ra, T, ma, mb,
                    la, lb);
}

/* ---- backward: dq ------------------------------------------------------------ */

template <int HD, int NW>
__global__ void __launch_bounds__(NW * 32) flash_dq_k(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k,
                                                      const bf16 *v, const float *lse, const float *delta,
                                                      const int32_t *doc, int T, int H, int KV, float scale,
                                                      float scale_log2) {
    constexpr int BM = 16 * NW;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem), *Gs = Qs + BM * HD, *Ks = Gs + BM * HD, *Vs = Ks + 2 * BN * HD;
    __shared__ int first_sh;
    int b = blockIdx.z, h = blockIdx.y, g = h / (H / KV);
    int q0 = (gridDim.x - 1 - blockIdx.x) * BM;
    int w = threadIdx.x >> 5, gi = (threadIdx.x & 31) >> 2;
    int64_t ldq = (int64_t)H * HD, ldk = (int64_t)KV * HD;
    int64_t qoff = (int64_t)b * T * ldq + (int64_t)h * HD;
    const bf16 *kb = k + (int64_t)b * T * ldk + (int64_t)g * HD, *vb = v + (int64_t)b * T * ldk + (int64_t)g * HD;
    int ra = q0 + w * 16 + gi, rb = ra + 8; /* this thread's rows */
    int fa = doc && ra < T ? doc[(int64_t)b * T + ra] : 0, fb = doc && rb < T ? doc[(int64_t)b * T + rb] : 0;
    const float *lr = lse + ((int64_t)b * H + h) * T, *dr = delta + ((int64_t)b * H + h) * T;
    float La = ra < T ? lr[ra] * LOG2E : 0.0f, Lb = rb < T ? lr[rb] * LOG2E : 0.0f;
    float Da = ra < T ? dr[ra] : 0.0f, Db = rb < T ? dr[rb] : 0.0f;
    int lo = block_first(doc, b, T, q0, BM, &first_sh);
    int kt_lo = lo / BN, kt_hi = (min(q0 + BM, T) - 1) / BN;

    load_tile<HD>(Qs, q + qoff, ldq, q0, BM, T);
    load_tile<HD>(Gs, dout + qoff, ldq, q0, BM, T);
    load_tile<HD>(Ks, kb, ldk, kt_lo * BN, BN, T);
    load_tile<HD>(Vs, vb, ldk, kt_lo * BN, BN, T);
    cp_commit();
    float acc[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    uint32_t qa[regs_a_t<HD>::value ? HD / 16 : 1][4], ga[regs_a_t<HD>::value ? HD / 16 : 1][4]; /* this warp's Q and dO rows */

    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        int buf = (kt - kt_lo) & 1;
        if (kt < kt_hi) {
            load_tile<HD>(Ks + (buf ^ 1) * BN * HD, kb, ldk, (kt + 1) * BN, BN, T);
            load_tile<HD>(Vs + (buf ^ 1) * BN * HD, vb, ldk, (kt + 1) * BN, BN, T);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const bf16 *Kt = Ks + buf * BN * HD, *Vt = Vs + buf * BN * HD;
        int k0 = kt * BN;
        float s[8][4], dp[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
        if constexpr (regs_a_t<HD>::value) {
            if (kt == kt_lo) {
                load_a<HD>(qa, Qs, w * 16);
                load_a<HD>(ga, Gs, w * 16);
            }
            mm_rbt<HD, BN>(s, qa, Kt);
            mm_rbt<HD, BN>(dp, ga, Vt);
        } else {
            mm_abt<HD, BN>(s, Qs, w * 16, Kt);
            mm_abt<HD, BN>(dp, Gs, w * 16, Vt);
        }
        bool masked = doc || k0 + BN - 1 > q0 + w * 16;
        dq_ds<BN>(s, dp, k0, ra, fa, fb, La, Lb, Da, Db, masked, scale_log2);
        mm_pb<HD, BN>(acc, s, Kt);
        __syncthreads();
    }
    store_rows<HD>(dq + qoff, ldq, acc, ra, T, scale, scale);
}

/* ---- backward: dk, dv ------------------------------------------------------------ */

template <int HD, int NW>
__global__ void __launch_bounds__(NW * 32) flash_dkdv_k(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q,
                                                    const bf16 *k, const bf16 *v, const float *lse,
                                                    const float *delta, const int32_t *doc, int T, int H, int KV,
                                                    float scale, float scale_log2) {
    constexpr int BK = 16 * NW, BQ = BN; /* keys per block (16 per warp), query rows per iteration */
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(smem), *Vs = Ks + BK * HD, *Qs = Vs + BK * HD, *Gs = Qs + 2 * BQ * HD;
    __shared__ __align__(16) float Ls[2][BQ], Ds[2][BQ];
    __shared__ __align__(16) int Fs[2][BQ];
    int b = blockIdx.z, g = blockIdx.y, group = H / KV;
    int k0 = blockIdx.x * BK; /* the most work first: early keys meet every later query */
    int w = threadIdx.x >> 5, gi = (threadIdx.x & 31) >> 2;
    int64_t ldq = (int64_t)H * HD, ldk = (int64_t)KV * HD;
    int64_t koff = (int64_t)b * T * ldk + (int64_t)g * HD;
    int ca = k0 + w * 16 + gi; /* this thread's keys: ca, ca + 8 */
    int qt_lo = k0 / BQ, nq = (T - 1) / BQ - qt_lo + 1, iters = nq * group;

    /* iteration i: query head g * group + i / nq, query tile qt_lo + i % nq */
    auto issue = [&](int i, int buf) {
        int h = g * group + i / nq, t0 = (qt_lo + i % nq) * BQ;
        int64_t qoff = (int64_t)b * T * ldq + (int64_t)h * HD;
        load_tile<HD>(Qs + buf * BQ * HD, q + qoff, ldq, t0, BQ, T);
        load_tile<HD>(Gs + buf * BQ * HD, dout + qoff, ldq, t0, BQ, T);
        load_query_values<BQ>(Ls[buf], Ds[buf], Fs[buf], lse, delta, doc, b, h, H, T, t0);
    };
    load_tile<HD>(Ks, k + koff, ldk, k0, BK, T);
    load_tile<HD>(Vs, v + koff, ldk, k0, BK, T);
    issue(0, 0);
    cp_commit();
    float ak[HD / 8][4], av[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) ak[n][e] = av[n][e] = 0.0f;
    uint32_t ka[regs_a_t<HD>::value ? HD / 16 : 1][4], va[regs_a_t<HD>::value ? HD / 16 : 1][4]; /* this warp's K and V rows */

    for (int i = 0; i < iters; i++) {
        int buf = i & 1;
        if (i + 1 < iters) {
            issue(i + 1, buf ^ 1);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const bf16 *Qt = Qs + buf * BQ * HD, *Gt = Gs + buf * BQ * HD;
        int t0 = (qt_lo + i % nq) * BQ;
        float s[8][4], dp[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
        if constexpr (regs_a_t<HD>::value) {
            if (i == 0) {
                load_a<HD>(ka, Ks, w * 16);
                load_a<HD>(va, Vs, w * 16);
            }
            mm_rbt<HD, BQ>(s, ka, Qt);
        } else {
            mm_abt<HD, BQ>(s, Ks, w * 16, Qt);
        }
        bool masked = doc || t0 < k0 + BK || t0 + BQ > T;
        kv_p<BQ>(s, Ls[buf], Fs[buf], t0, ca, T, masked, scale_log2);
        mm_pb<HD, BQ>(av, s, Gt);
        if constexpr (regs_a_t<HD>::value) mm_rbt<HD, BQ>(dp, va, Gt);
        else mm_abt<HD, BQ>(dp, Vs, w * 16, Gt);
        kv_ds<BQ>(dp, s, Ds[buf]);
        mm_pb<HD, BQ>(ak, dp, Qt);
        __syncthreads();
    }
    store_rows<HD>(dk + koff, ldk, ak, ca, T, scale, scale);
    store_rows<HD>(dv + koff, ldk, av, ca, T, 1.0f, 1.0f);
}

/* A kernel may take more than 48 KiB of dynamic shared memory only when asked. */
template <typename K>
int allow_smem(K kernel, int bytes) {
    return (int)cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

template <int HD, int NW, int KN>
int fwd(ms_cuda_stream s, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int32_t *doc,
        int B, int T, int H, int KV) {
    constexpr int BM = 16 * NW;
    int smem = (BM + 4 * KN) * HD * 2;
    auto kern = flash_fwd_k<HD, NW, KN>;
    int e = allow_smem(kern, smem);
    if (e) return e;
    dim3 grid((T + BM - 1) / BM, H, B);
    kern<<<grid, NW * 32, smem, s>>>(out, lse, q, k, v, doc, T, H, KV, LOG2E / sqrtf((float)HD));
    return launched();
}

template <int HD, int NQ, int NK>
int bwd(ms_cuda_stream s, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
        const bf16 *v, const float *lse, const float *delta, const int32_t *doc, int B, int T, int H, int KV) {
    float scale = 1.0f / sqrtf((float)HD), sl = scale * LOG2E;
    constexpr int BM = 16 * NQ, BK = 16 * NK;
    int smem_dq = (2 * BM + 4 * BN) * HD * 2;
    auto kq = flash_dq_k<HD, NQ>;
    int e = allow_smem(kq, smem_dq);
    if (e) return e;
    kq<<<dim3((T + BM - 1) / BM, H, B), NQ * 32, smem_dq, s>>>(dq, dout, q, k, v, lse, delta, doc, T, H, KV, scale,
                                                               sl);
    if ((e = launched())) return e;
    int smem_kv = (2 * BK + 4 * BN) * HD * 2;
    auto kk = flash_dkdv_k<HD, NK>;
    if ((e = allow_smem(kk, smem_kv))) return e;
    kk<<<dim3((T + BK - 1) / BK, KV, B), NK * 32, smem_kv, s>>>(dk, dv, dout, q, k, v, lse, delta, doc, T, H, KV,
                                                                scale, sl);
    return launched();
}

} // namespace

extern "C" int cuda_flash_supported(int bf16f, int hd, int H, int KV) {
    return bf16f && (hd == 64 || hd == 128) && KV >= 1 && H % KV == 0;
}

/* The block shapes the engine runs (the workbench times the others): here,
 * warps per forward block, keys per forward tile, warps per dq and dk/dv block;
 * on sm_90, attention_wgmma.cu's warpgroups per dq block (0: the fused
 * backward, dq summed in the dk/dv kernel, where cuda_attention_fused_bwd
 * says) and per dk/dv block, dk/dv blocks an SM. */
#define FWD_WARPS 8
#define FWD_KEYS 128
#define DQ_WARPS(hd) ((hd) == 64 ? 4 : 8)
#define DKDV_WARPS 4
#define WGMMA_DQ_WARPGROUPS(hd) (cuda_attention_fused_bwd(hd) ? 0 : (hd) == 64 ? 1 : 2)
#define WGMMA_DKDV_WARPGROUPS(hd) (cuda_attention_fused_bwd(hd) ? 2 : 1)
#define WGMMA_DKDV_BLOCKS_PER_SM(hd) ((hd) == 64 ? 3 : 1)

extern "C" int cuda_flash_fwd_nw(ms_cuda_stream s, void *out, float *lse, const void *q, const void *k,
                                 const void *v, const int32_t *doc, int B, int T, int H, int KV, int hd, int nw,
                                 int keys) {
    if (!cuda_flash_supported(1, hd, H, KV) || (nw != 4 && nw != 8) || (keys != 64 && keys != 128))
        return (int)cudaErrorInvalidValue;
    if (B == 0 || T == 0) return 0;
#define ARGS s, (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, doc, B, T, H, KV
#define PICK(HD) (nw == 4 ? (keys == 64 ? fwd<HD, 4, 64>(ARGS) : fwd<HD, 4, 128>(ARGS)) \
                          : (keys == 64 ? fwd<HD, 8, 64>(ARGS) : fwd<HD, 8, 128>(ARGS)))
    return hd == 64 ? PICK(64) : PICK(128);
#undef PICK
#undef ARGS
}

extern "C" int cuda_flash_bwd_nw(ms_cuda_stream s, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                 const void *k, const void *v, const float *lse, const float *delta,
                                 const int32_t *doc, int B, int T, int H, int KV, int hd, int nw_dq, int nw_kv) {
    if (!cuda_flash_supported(1, hd, H, KV) || (nw_dq != 4 && nw_dq != 8) || (nw_kv != 4 && nw_kv != 8))
        return (int)cudaErrorInvalidValue;
    if (B == 0 || T == 0) return 0;
#define ARGS s, (bf16 *)dq, (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, \
             (const bf16 *)v, lse, delta, doc, B, T, H, KV
#define PICK(HD) (nw_dq == 4 ? (nw_kv == 4 ? bwd<HD, 4, 4>(ARGS) : bwd<HD, 4, 8>(ARGS)) \
                             : (nw_kv == 4 ? bwd<HD, 8, 4>(ARGS) : bwd<HD, 8, 8>(ARGS)))
    return hd == 64 ? PICK(64) : PICK(128);
#undef PICK
#undef ARGS
}

extern "C" int cuda_flash_fwd(ms_cuda_stream s, void *out, float *lse, const void *q, const void *k, const void *v,
                              const int32_t *doc, int B, int T, int H, int KV, int hd) {
    if (cuda_flash_wgmma_ready())
        return cuda_flash_wgmma_fwd(s, out, lse, q, k, v, doc, B, T, H, KV, hd);
    return cuda_flash_fwd_nw(s, out, lse, q, k, v, doc, B, T, H, KV, hd, FWD_WARPS, FWD_KEYS);
}

extern "C" int cuda_flash_bwd(ms_cuda_stream s, void *dq, void *dk, void *dv, const void *dout, const void *q,
                              const void *k, const void *v, const float *lse, void *work, const int32_t *doc, int B,
                              int T, int H, int KV, int hd) {
    if (cuda_flash_wgmma_ready())
        return cuda_flash_wgmma_bwd(s, dq, dk, dv, dout, q, k, v, lse, work, doc, B, T, H, KV, hd,
                                    WGMMA_DQ_WARPGROUPS(hd), WGMMA_DKDV_WARPGROUPS(hd),
                                    WGMMA_DKDV_BLOCKS_PER_SM(hd), 3);
    return cuda_flash_bwd_nw(s, dq, dk, dv, dout, q, k, v, lse, (const float *)work, doc, B, T, H, KV, hd,
                             DQ_WARPS(hd), DKDV_WARPS);
}
