/*
 * kernels/cuda/attention_wgmma.cu — the Hopper path of flash attention: the
 * three kernels of attention_flash.cu (forward; backward dq; backward dk/dv,
 * no atomics, so bitwise repeatable) with every matmul on warpgroup MMA
 * (wgmma, sm_90a). A block is one or two warpgroups of 128 threads, each
 * owning 64 rows (query rows, or keys in dk/dv); the other operand streams
 * through shared memory in tiles, two buffers deep (three for dq's K, whose
 * last matmul overlaps the next tile), loaded by cp.async. The forward's block
 * has a third warpgroup that only loads, handing tiles over through
 * shared-memory barriers (warp specialisation, wg_fwd_k below). At head dim 128
 * the engine runs a fourth kernel instead of the two backward ones: the fused
 * backward, dk/dv and dq in one pass, each query tile's dq summed across key
 * blocks in a fixed order by the TMA unit (wg_bwd_k below). Block shapes and
 * the choices measured against them: kernels/bench/NOTES.md.
 *
 * - Shared-memory tiles are stored as wgmma reads them with 128-byte
 *   swizzling: panels of 64 columns (128 bytes a row), 8-row groups 1024 bytes
 *   apart, the 16-byte chunks of row r XOR-ed with r & 7; every panel starts on
 *   a 1024-byte boundary. One layout serves both operand orders: read along
 *   its rows it is a "K-major" operand (Q, K, V, dO as the right factor of
 *   S = Q K^T and its kin), read down its columns an "MN-major" one (V in
 *   O += P V, K in dQ += dS K, dO and Q in dV and dK).
 * - S, dP and their transposes come from two shared-memory operands; P and dS
 *   go from the accumulators straight into register A operands, as in the
 *   mma.sync kernels (flash.cuh's layout is wgmma's, warp by warp); the fused
 *   backward's dQ = dS K reads dS^T and K from shared memory, both MN-major.
 * - Only the sm_90a build has the bodies (elsewhere they trap);
 *   cuda_flash_wgmma_ready says whether the running device can take them.
 */
#include "cuda/flash.cuh"

namespace {
using namespace flash;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WGMMA 1
#else
#define WGMMA 0
#endif

constexpr int WG = 128; /* threads in a warpgroup; each owns 64 rows */
constexpr int FWD_STAGES = 2; /* the forward's tiles of keys (and of values) in flight; 3 measured no faster */

/* a compile-time flag passed to a generic lambda */
template <bool B>
struct flag { static constexpr bool value = B; };

#if WGMMA
/* element offset of (r, c) in an R-row tile (see the header) */
template <int R>
__device__ __forceinline__ int at(int r, int c) {
    return (c >> 6) * (R * 64) + r * 64 + ((((c >> 3) & 7) ^ (r & 7)) << 3) + (c & 7);
}

/* Rows [r0, r0 + R) of a (T, ld) bf16 matrix into an R-row tile by NT threads
 * (the block's first NT, or any NT from a multiple of NT on: thread x is the
 * (x % NT)-th); rows at or past T are zero-filled. A thread copies the same
 * 16-byte column chunk of every (NT / (HD / 8))-th row: a multiple of 8 rows
 * apart, so one swizzled offset serves them all. */
template <int HD, int R, int NT>
__device__ __forceinline__ void load_tile(bf16 *sh, const bf16 *g, int64_t ld, int r0, int T) {
    constexpr int CH = HD / 8, RP = NT / CH;
    static_assert(RP % 8 == 0 && R % RP == 0, "rows per pass");
    int c = threadIdx.x % CH, r = threadIdx.x % NT / CH;
    bf16 *d = sh + at<R>(r, c * 8);
    const bf16 *src = g + (int64_t)(r0 + r) * ld + c * 8;
#pragma unroll
    for (int k = 0; k < R / RP; k++) {
        bool ok = r0 + r + k * RP < T;
        cp16(d + k * RP * 64, ok ? src + k * RP * ld : g, ok);
    }
}

/* The cp.async writes are visible to this thread's wgmma reads (the async
 * proxy) once fenced; the barrier after it makes them every thread's. */
__device__ __forceinline__ void tiles_ready() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
}

/* A shared-memory matrix descriptor: start, leading byte offset, 1024-byte
 * stride between 8-row groups, 128-byte swizzle. Adding n to it moves the start
 * 16 n bytes on (the start field's 14 bits cover all of shared memory). */
__device__ __forceinline__ uint64_t desc(const bf16 *p, uint32_t lbo) {
    return (uint64_t)((sm(p) & 0x3ffff) >> 4) | (uint64_t)(lbo >> 4) << 16 | (uint64_t)(1024 >> 4) << 32 |
           1ull << 62;
}
/* K-major operand: the rows from p on of an R-row tile; k_step<R>(ks) moves it to columns 16 ks .. */
__device__ __forceinline__ uint64_t desc_k(const bf16 *p) { return desc(p, 16); }
template <int R>
__device__ __forceinline__ constexpr uint32_t k_step(int ks) { return ((ks >> 2) * R * 128 + (ks & 3) * 32) >> 4; }
/* MN-major operand: an R-row tile, every column as N; mn_step(ks) moves it to rows 16 ks .. as K */
template <int R>
__device__ __forceinline__ uint64_t desc_mn(const bf16 *tile) { return desc(tile, R * 128); }
__device__ __forceinline__ constexpr uint32_t mn_step(int ks) { return ks * 16 * 128 >> 4; }

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* until at most N of this warpgroup's committed groups are pending */
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

/* After wg_wait: the accumulators are read only from here on (the compiler
 * must not hoist reads above the wait). */
template <int N>
__device__ __forceinline__ void settled(float (*d)[4]) {
#pragma unroll
    for (int n = 0; n < N / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(d[n][e])::"memory");
}

/* D (64 x N per warpgroup, 16 x N per warp in flash.cuh's layout) += A B, k 16:
 * mma_ss with A and B in shared memory, both K-major, or both MN-major when MN
 * (D = A B when !acc: the first k step needs no zeroed accumulators), mma_rs
 * with A in registers (one 16 x 16 fragment per warp) and B MN-major. */
template <int N>
__device__ void mma_rs(float *d, const uint32_t *a, uint64_t b);

template <int MN>
__device__ __forceinline__ void mma_ss64(float *d, uint64_t a, uint64_t b, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, %32, %33, p, 1, 1, %35, %35;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "l"(a), "l"(b), "r"(acc), "n"(MN));
}
template <> __device__ __forceinline__ void mma_rs<64>(float *d, const uint32_t *a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
        "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
template <int MN>
__device__ __forceinline__ void mma_ss128(float *d, uint64_t a, uint64_t b, int acc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, %64, %65, p, 1, 1, %67, %67;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(a), "l"(b), "r"(acc), "n"(MN));
}
template <> __device__ __forceinline__ void mma_rs<128>(float *d, const uint32_t *a, uint64_t b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
        "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
        "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
        "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
        "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
template <int N, int MN = 0>
__device__ __forceinline__ void mma_ss(float *d, uint64_t a, uint64_t b, int acc) {
    if constexpr (N == 64) mma_ss64<MN>(d, a, b, acc);
    else mma_ss128<MN>(d, a, b, acc);
}

/* Issue a backward tile's two score matmuls over the head dim, committed as one
 * group and not waited for: s = A B^T and dp = A' B'^T, the A operands the
 * rows from a and a2 of RA-row tiles, the B operands RB-row tiles, all K-major. */
template <int RA, int RB, int HD>
__device__ __forceinline__ void score_pair(float (*s)[4], float (*dp)[4], uint64_t a, uint64_t b, uint64_t a2,
                                           uint64_t b2) {
    wg_fence();
#pragma unroll
    for (int ks = 0; ks < HD / 16; ks++) {
        mma_ss<RB>(&s[0][0], a + k_step<RA>(ks), b + k_step<RB>(ks), ks > 0);
        mma_ss<RB>(&dp[0][0], a2 + k_step<RA>(ks), b2 + k_step<RB>(ks), ks > 0);
    }
    wg_commit();
}

/* Named barriers (bar.sync waits, bar.arrive does not) of n threads. */
__device__ __forceinline__ void bar_sync(int id, int n) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void bar_arrive(int id, int n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
/* This warpgroup's registers a thread: a producer gives some up, consumers take them. */
template <int N>
__device__ __forceinline__ void set_max_registers() {
    if constexpr (N > 128) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
    else asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

/* Shared-memory barriers (mbarrier) that count arrivals: a phase completes at
 * the count given at init, and its parity (0, 1, 0, ...) names it to a waiter. */
__device__ __forceinline__ void mbar_init(uint64_t *bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(sm(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(sm(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t *bar, int parity) {
    uint32_t done;
    do
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(sm(bar)), "r"(parity)
                     : "memory");
    while (!done);
}
#endif

/* ---- forward ------------------------------------------------------------------ */

/* 128 query rows of one (b, h) a block, in three warpgroups: two consumers of
 * 64 rows each and a producer; key and value tiles of 128 rows, each in
 * FWD_STAGES stages of its own.
 * - The producer loads Q with the first key tile, then each key (value) tile
 *   into its next stage once both consumers are done with the tile before
 *   there: the stage's "empty" barrier, one arrival a consumer warp. Its
 *   threads copy by cp.async, wait for their own copies, make them visible to
 *   wgmma and arrive on the stage's "full" barrier. Keys and values go apart:
 *   a tile's keys are wanted an iteration before its values, and are done
 *   with an iteration earlier. The producer gives its registers to the
 *   consumers (setmaxnreg).
 * - A consumer overlaps its softmax with the tensor cores: tile i - 1's
 *   O += P V runs while tile i's scores go through the softmax. (Taking turns
 *   at the tensor cores across the two consumers, FlashAttention-3's
 *   ping-pong, measured no faster here: kernels/bench/NOTES.md.) */
template <int HD>
__global__ void __launch_bounds__(3 * WG, 1) wg_fwd_k(bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                                                      const bf16 *v, const int32_t *doc, int T, int H, int KV,
                                                      float scale_log2) {
#if WGMMA
    constexpr int BM = 2 * 64, KN = 128, ST = FWD_STAGES, NC = 2 * WG;
    enum { KEYS, VALUES };
    extern __shared__ unsigned char raw[];
    bf16 *Qs = reinterpret_cast<bf16 *>((sm(raw) + 1023 & ~1023u) - sm(raw) + raw);
    bf16 *tiles[2] = {Qs + BM * HD, Qs + (BM + ST * KN) * HD}; /* [KEYS], [VALUES]: ST tiles each */
    __shared__ __align__(8) uint64_t full[2][ST], empty[2][ST];
    __shared__ int first_sh;
    int b = blockIdx.z, h = blockIdx.x, g = h / (H / KV);
    int q0 = (gridDim.y - 1 - blockIdx.y) * BM; /* the longest rows first (grid_longest_first) */
    int64_t ldq = (int64_t)H * HD, ldk = (int64_t)KV * HD;
    int lo = block_first(doc, b, T, q0, BM, &first_sh);
    int kt_lo = lo / KN, n = (min(q0 + BM, T) - 1) / KN - kt_lo + 1; /* n key tiles from kt_lo */
    auto tile = [&](int kind, int i) { return tiles[kind] + i % ST * KN * HD; };
    if (threadIdx.x == 0)
        for (int kind = 0; kind < 2; kind++)
            for (int st = 0; st < ST; st++) mbar_init(&full[kind][st], WG), mbar_init(&empty[kind][st], NC / 32);
    __syncthreads();

    if (threadIdx.x >= NC) { /* the producer */
        set_max_registers<56>();
        const bf16 *src[2] = {k + (int64_t)b * T * ldk + (int64_t)g * HD, v + (int64_t)b * T * ldk + (int64_t)g * HD};
        auto load = [&](int kind, int i) { /* issue tile i of keys or values */
            if (i >= ST) mbar_wait(&empty[kind][i % ST], (i / ST - 1) & 1);
            load_tile<HD, KN, WG>(tile(kind, i), src[kind], ldk, (kt_lo + i) * KN, T);
            cp_commit();
        };
        auto landed = [&] { /* this thread's copies are in, and visible to wgmma */
            cp_wait<0>();
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        };
        /* Q with keys 0; values i - 1 are announced with keys i, as the consumers want them */
        load_tile<HD, BM, WG>(Qs, q + (int64_t)b * T * ldq + (int64_t)h * HD, ldq, q0, T);
        for (int i = 0; i < n; i++) {
            load(KEYS, i);
            landed();
            if (i > 0) mbar_arrive(&full[VALUES][(i - 1) % ST]);
            mbar_arrive(&full[KEYS][i % ST]);
            load(VALUES, i);
        }
        landed();
        mbar_arrive(&full[VALUES][(n - 1) % ST]);
        return;
    }

    set_max_registers<224>();
    int wg = threadIdx.x / WG, w = threadIdx.x >> 5, gi = (threadIdx.x & 31) >> 2;
    int ra = q0 + w * 16 + gi, rb = ra + 8; /* this thread's rows */
    int fa = doc && ra < T ? doc[(int64_t)b * T + ra] : 0, fb = doc && rb < T ? doc[(int64_t)b * T + rb] : 0;
    float o[HD / 8][4], ma = -INFINITY, mb = -INFINITY, la = 0.0f, lb = 0.0f;
#pragma unroll
    for (int c = 0; c < HD / 8; c++) o[c][0] = o[c][1] = o[c][2] = o[c][3] = 0.0f;
    uint64_t qd = desc_k(Qs + wg * 64 * 64); /* this warpgroup's 64 rows of Q */
    float s[KN / 8][4];
    uint32_t p[KN / 16][4];
    auto wait_full = [&](int kind, int i) { mbar_wait(&full[kind][i % ST], (i / ST) & 1); };
    auto release = [&](int kind, int i) {
        if ((threadIdx.x & 31) == 0) mbar_arrive(&empty[kind][i % ST]);
    };
    auto scores = [&](int i) { /* issue S = Q K_i^T */
        uint64_t kd = desc_k(tile(KEYS, i));
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++) mma_ss<KN>(&s[0][0], qd + k_step<BM>(ks), kd + k_step<KN>(ks), ks > 0);
        wg_commit();
    };
    auto values = [&](int i) { /* issue O += P V_i */
        uint64_t vd = desc_mn<KN>(tile(VALUES, i));
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < KN / 16; ks++) mma_rs<HD>(&o[0][0], p[ks], vd + mn_step(ks));
        wg_commit();
    };
    /* tile i's scores, waited for, into probabilities; returns the factors of the rows' old sums */
    auto softmax = [&](int i) {
        settled<KN>(s);
        release(KEYS, i);
        int k0 = (kt_lo + i) * KN;
        if (doc || k0 + KN - 1 > q0 + wg * 64) mask_rows<KN>(s, k0, ra, fa, fb);
        return softmax_step<KN>(s, ma, mb, la, lb, scale_log2);
    };
    auto to_p = [&] { /* once the last O += P V is done with P's registers */
#pragma unroll
        for (int ks = 0; ks < KN / 16; ks++) acc_to_a(p[ks], s, ks);
    };

    wait_full(KEYS, 0);
    scores(0);
    wg_wait<0>();
    softmax(0);
    to_p();
    for (int i = 1; i < n; i++) {
        wait_full(KEYS, i);
        wait_full(VALUES, i - 1);
        scores(i);
        values(i - 1);
        wg_wait<1>();
        float2 c = softmax(i);
        wg_wait<0>();
        settled<HD>(o);
        release(VALUES, i - 1);
        scale_rows<HD>(o, c);
        to_p();
    }
    wait_full(VALUES, n - 1);
    values(n - 1);
    wg_wait<0>();
    settled<HD>(o);
    finish_rows<HD>(out + (int64_t)b * T * ldq + (int64_t)h * HD, ldq, lse + ((int64_t)b * H + h) * T, o, ra, T, ma, mb,
                    la, lb);
#else
    __trap();
#endif
}

/* ---- backward: dq ------------------------------------------------------------ */

/* 64 NWG query rows of one (b, h) a block; key/value tiles of 64 rows. Tile i's
 * dQ += dS K is issued after tile i + 1's S and dP, so dS of tile i + 1 is
 * computed while the tensor cores work on tile i (a third K buffer keeps K_i
 * alive meanwhile). */
template <int HD, int NWG>
__global__ void __launch_bounds__(NWG * WG, 1) wg_dq_k(bf16 *dq, const bf16 *dout, const bf16 *q, const bf16 *k,
                                                    const bf16 *v, const float *lse, const float *delta,
                                                    const int32_t *doc, int T, int H, int KV, float scale,
                                                    float scale_log2) {
#if WGMMA
    constexpr int BM = NWG * 64, BN = 64, KB = 3;
    extern __shared__ unsigned char raw[];
    bf16 *Qs = reinterpret_cast<bf16 *>((sm(raw) + 1023 & ~1023u) - sm(raw) + raw), *Gs = Qs + BM * HD,
         *Vs = Gs + BM * HD, *Ks = Vs + 2 * BN * HD;
    __shared__ int first_sh;
    int b = blockIdx.z, h = blockIdx.x, g = h / (H / KV);
    int q0 = (gridDim.y - 1 - blockIdx.y) * BM; /* the longest rows first (grid_longest_first) */
    int wg = threadIdx.x / WG, w = threadIdx.x >> 5, gi = (threadIdx.x & 31) >> 2;
    int64_t ldq = (int64_t)H * HD, ldk = (int64_t)KV * HD;
    int64_t qoff = (int64_t)b * T * ldq + (int64_t)h * HD;
    const bf16 *kb = k + (int64_t)b * T * ldk + (int64_t)g * HD, *vb = v + (int64_t)b * T * ldk + (int64_t)g * HD;
    int ra = q0 + w * 16 + gi, rb = ra + 8; /* this thread's rows */
    int fa = doc && ra < T ? doc[(int64_t)b * T + ra] : 0, fb = doc && rb < T ? doc[(int64_t)b * T + rb] : 0;
    const float *lr = lse + ((int64_t)b * H + h) * T, *dr = delta + ((int64_t)b * H + h) * T;
    float La = ra < T ? lr[ra] * LOG2E : 0.0f, Lb = rb < T ? lr[rb] * LOG2E : 0.0f;
    float Da = ra < T ? dr[ra] : 0.0f, Db = rb < T ? dr[rb] : 0.0f;
    int lo = block_first(doc, b, T, q0, BM, &first_sh);
    int kt_lo = lo / BN, n = (min(q0 + BM, T) - 1) / BN - kt_lo + 1; /* n key tiles from kt_lo */

    load_tile<HD, BM, NWG * WG>(Qs, q + qoff, ldq, q0, T);
    load_tile<HD, BM, NWG * WG>(Gs, dout + qoff, ldq, q0, T);
    load_tile<HD, BN, NWG * WG>(Ks, kb, ldk, kt_lo * BN, T);
    load_tile<HD, BN, NWG * WG>(Vs, vb, ldk, kt_lo * BN, T);
    cp_commit();
    float acc[HD / 8][4];
#pragma unroll
    for (int c = 0; c < HD / 8; c++) acc[c][0] = acc[c][1] = acc[c][2] = acc[c][3] = 0.0f;
    uint64_t qd = desc_k(Qs + wg * 64 * 64), gd = desc_k(Gs + wg * 64 * 64); /* this warpgroup's rows */
    uint32_t ds[BN / 16][4]; /* dS of the last tile, as A fragments */
    auto dqk = [&](int i) { /* issue dQ += dS K_i */
        uint64_t kd = desc_mn<BN>(Ks + i % KB * BN * HD);
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < BN / 16; ks++) mma_rs<HD>(&acc[0][0], ds[ks], kd + mn_step(ks));
        wg_commit();
    };

    /* tile i; with overlap (every tile but the first) tile i - 1's dS K is issued meanwhile */
    auto tile = [&](int i, auto overlap) {
        cp_wait<0>();
        tiles_ready(); /* tile i is in; every warp is done with tile i - 1 (and i - 2) */
        if (i + 1 < n) {
            load_tile<HD, BN, NWG * WG>(Ks + (i + 1) % KB * BN * HD, kb, ldk, (kt_lo + i + 1) * BN, T);
            load_tile<HD, BN, NWG * WG>(Vs + (i + 1) % 2 * BN * HD, vb, ldk, (kt_lo + i + 1) * BN, T);
            cp_commit();
        }
        uint64_t kd = desc_k(Ks + i % KB * BN * HD), vd = desc_k(Vs + i % 2 * BN * HD);
        int k0 = (kt_lo + i) * BN;
        float s[BN / 8][4], dp[BN / 8][4];
        score_pair<BM, BN, HD>(s, dp, qd, kd, gd, vd);
        if constexpr (decltype(overlap)::value) {
            dqk(i - 1);
            wg_wait<1>();
        } else {
            wg_wait<0>();
        }
        settled<BN>(s);
        settled<BN>(dp);
        dq_ds<BN>(s, dp, k0, ra, fa, fb, La, Lb, Da, Db, doc || k0 + BN - 1 > q0 + wg * 64, scale_log2);
        if constexpr (decltype(overlap)::value) {
            wg_wait<0>();
            settled<HD>(acc);
        }
#pragma unroll
        for (int ks = 0; ks < BN / 16; ks++) acc_to_a(ds[ks], s, ks);
    };
    tile(0, flag<false>{});
    for (int i = 1; i < n; i++) tile(i, flag<true>{});
    dqk(n - 1);
    wg_wait<0>();
    settled<HD>(acc);
    store_rows<HD>(dq + qoff, ldq, acc, ra, T, scale, scale);
#else
    __trap();
#endif
}

/* ---- backward: dk, dv ------------------------------------------------------------ */

#if WGMMA
/* One query tile of a dk/dv pass, transposed, for a warpgroup's 64 keys (K
 * and V K-major from kd, vd): S^T = K Q^T and dP^T = V dO^T from the tile's Q
 * and dO (Qt, Gt), then P^T in s and dS^T in dp (flash.cuh's kv_p, kv_ds,
 * from the tile's query values Ls, Ds, Fs). */
template <int BK, int BQ, int HD>
__device__ __forceinline__ void kv_scores(float (*s)[4], float (*dp)[4], uint64_t kd, uint64_t vd, const bf16 *Qt,
                                          const bf16 *Gt, const float *Ls, const float *Ds, const int *Fs, int t0,
                                          int ca, int T, bool masked, float scale_log2) {
    score_pair<BK, BQ, HD>(s, dp, kd, desc_k(Qt), vd, desc_k(Gt));
    wg_wait<0>();
    settled<BQ>(s);
    settled<BQ>(dp);
    kv_p<BQ>(s, Ls, Fs, t0, ca, T, masked, scale_log2);
    kv_ds<BQ>(dp, s, Ds);
}

/* dV += P^T dO and dK += dS^T Q from P^T and dS^T as A fragments, dO and Q
 * MN-major from gm, qm: issued and committed, not waited for. */
template <int BQ, int HD>
__device__ __forceinline__ void kv_accumulate(float (*av)[4], float (*ak)[4], const uint32_t (*pa)[4],
                                              const uint32_t (*da)[4], uint64_t gm, uint64_t qm) {
    wg_fence();
#pragma unroll
    for (int ks = 0; ks < BQ / 16; ks++) {
        mma_rs<HD>(&av[0][0], pa[ks], gm + mn_step(ks));
        mma_rs<HD>(&ak[0][0], da[ks], qm + mn_step(ks));
    }
    wg_commit();
}

/* dK (times scale) and dV of this thread's keys ca, ca + 8, once their last
 * matmuls are waited for, into (T, ld) matrices. */
template <int HD>
__device__ __forceinline__ void kv_store(bf16 *dk, bf16 *dv, int64_t ld, float (*ak)[4], float (*av)[4], int ca, int T,
                                         float scale) {
    settled<HD>(av);
    settled<HD>(ak);
    store_rows<HD>(dk, ld, ak, ca, T, scale, scale);
    store_rows<HD>(dv, ld, av, ca, T, 1.0f, 1.0f);
}
#endif


/* 64 NWG keys of one (b, kv head) a block; query tiles of 64 rows of every
 * query head of the group. OCC blocks an SM (registers capped to fit). */
template <int HD, int NWG, int OCC>
__global__ void __launch_bounds__(NWG * WG, OCC) wg_dkdv_k(bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q,
                                                        const bf16 *k, const bf16 *v, const float *lse,
                                                        const float *delta, const int32_t *doc, int T, int H, int KV,
                                                        float scale, float scale_log2) {
#if WGMMA
    constexpr int BK = NWG * 64, BQ = 64;
    extern __shared__ unsigned char raw[];
    bf16 *Ks = reinterpret_cast<bf16 *>((sm(raw) + 1023 & ~1023u) - sm(raw) + raw), *Vs = Ks + BK * HD,
         *Qs = Vs + BK * HD, *Gs = Qs + 2 * BQ * HD;
    __shared__ __align__(16) float Ls[2][BQ], Ds[2][BQ];
    __shared__ __align__(16) int Fs[2][BQ];
    int b = blockIdx.z, g = blockIdx.x, group = H / KV;
    int k0 = blockIdx.y * BK; /* the most work first: early keys meet every later query (grid_longest_first) */
    int wg = threadIdx.x / WG, w = threadIdx.x >> 5, gi = (threadIdx.x & 31) >> 2;
    int64_t ldq = (int64_t)H * HD, ldk = (int64_t)KV * HD;
    int64_t koff = (int64_t)b * T * ldk + (int64_t)g * HD;
    int ca = k0 + w * 16 + gi; /* this thread's keys: ca, ca + 8 */
    int qt_lo = k0 / BQ, nq = (T - 1) / BQ - qt_lo + 1, iters = nq * group;

    /* iteration i: query head g * group + i / nq, query tile qt_lo + i % nq */
    auto issue = [&](int i, int buf) {
        int h = g * group + i / nq, t0 = (qt_lo + i % nq) * BQ;
        int64_t qoff = (int64_t)b * T * ldq + (int64_t)h * HD;
        load_tile<HD, BQ, NWG * WG>(Qs + buf * BQ * HD, q + qoff, ldq, t0, T);
        load_tile<HD, BQ, NWG * WG>(Gs + buf * BQ * HD, dout + qoff, ldq, t0, T);
        load_query_values<BQ>(Ls[buf], Ds[buf], Fs[buf], lse, delta, doc, b, h, H, T, t0);
    };
    load_tile<HD, BK, NWG * WG>(Ks, k + koff, ldk, k0, T);
    load_tile<HD, BK, NWG * WG>(Vs, v + koff, ldk, k0, T);
    issue(0, 0);
    cp_commit();
    uint64_t kd = desc_k(Ks + wg * 64 * 64), vd = desc_k(Vs + wg * 64 * 64); /* this warpgroup's keys */
    float ak[HD / 8][4], av[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) ak[n][e] = av[n][e] = 0.0f;

    for (int i = 0; i < iters; i++) {
        int buf = i & 1;
        cp_wait<0>();
        tiles_ready(); /* iteration i's tiles are in; every warp is done with iteration i - 1 */
        if (i + 1 < iters) {
            issue(i + 1, buf ^ 1);
            cp_commit();
        }
        const bf16 *Qt = Qs + buf * BQ * HD, *Gt = Gs + buf * BQ * HD;
        int t0 = (qt_lo + i % nq) * BQ;
        float s[BQ / 8][4], dp[BQ / 8][4];
        kv_scores<BK, BQ, HD>(s, dp, kd, vd, Qt, Gt, Ls[buf], Ds[buf], Fs[buf], t0, ca, T,
                              doc || t0 < k0 + wg * 64 + 64 || t0 + BQ > T, scale_log2);
        uint32_t pa[BQ / 16][4], da[BQ / 16][4];
#pragma unroll
        for (int ks = 0; ks < BQ / 16; ks++) {
            acc_to_a(pa[ks], s, ks);
            acc_to_a(da[ks], dp, ks);
        }
        kv_accumulate<BQ, HD>(av, ak, pa, da, desc_mn<BQ>(Gt), desc_mn<BQ>(Qt));
        wg_wait<0>();
    }
    kv_store<HD>(dk + koff, dv + koff, ldk, ak, av, ca, T, scale);
#else
    __trap();
#endif
}

/* ---- backward, fused: dk, dv and dq in one pass --------------------------------- */

#if WGMMA
/* Named barriers of the fused backward (0 is __syncthreads'): the consumers'
 * own, and per dQ buffer "full" (consumers arrive, the writer waits) and
 * "empty" (the writer arrives, the consumers wait). */
enum { BAR_CONSUMERS = 1, BAR_FULL = 2, BAR_EMPTY = 4 };
/* a tile's counter: read with acquire, written with release semantics, at GPU scope */
__device__ __forceinline__ int load_acquire(const int *p) {
    int v;
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void store_release(int *p, int v) {
    asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
}
/* global[0, bytes) += shared[0, bytes) in fp32 by the TMA unit, waited until written */
__device__ __forceinline__ void bulk_add(float *g, const float *sh, int bytes) {
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n"
                 "cp.async.bulk.commit_group;\n"
                 "cp.async.bulk.wait_group 0;\n" ::"l"(g), "r"(sm(sh)), "r"(bytes) : "memory");
}
#endif

/* 128 keys of one (b, kv head) a block, two consumer warpgroups of 64 keys
 * each, and a warp that writes dQ; query tiles of 64 rows of every query head
 * of the group, the last tile first. The consumers compute dK += dS^T Q,
 * dV += P^T dO and the tile's dQ part = dS K over the block's keys (dS^T through
 * shared memory, warpgroup w taking K's columns [64 w, 64 w + 64)), and leave
 * the part in one of two fp32 buffers (DQ). The writer adds it to the tile's
 * sums in acc by one TMA bulk reduction, in a fixed order: key block by key
 * block under the tile's counter, so the bits of dq repeat run after run, and
 * while it waits for the blocks before, the consumers go on with the next
 * tile. A block waits only for blocks of lower key index of its kv head:
 * launched before it (grid_longest_first), so resident or done; walking the
 * tiles from the last, every block of a kv head reaches a tile at about the
 * same time. A third warpgroup gives its registers to the consumers
 * (setmaxnreg); one of its warps is the writer. */
template <int HD>
__global__ void __launch_bounds__(3 * WG, 1) wg_bwd_k(float *acc, int *count, bf16 *dk, bf16 *dv, const bf16 *dout,
                                                   const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                                                   const float *delta, const int32_t *doc, int T, int H, int KV,
                                                   float scale, float scale_log2) {
#if WGMMA
    constexpr int BK = 2 * 64, BQ = CUDA_ATTN_DQ_ROWS, NH = HD / 2, NC = 2 * WG; /* NH: dq's columns a warpgroup */
    constexpr int PART = BQ * HD;                                                /* floats of a tile's dQ */
    static_assert(NH == 64, "dq's wgmma shape: head dim 128");
    extern __shared__ unsigned char raw[];
    bf16 *Ks = reinterpret_cast<bf16 *>((sm(raw) + 1023 & ~1023u) - sm(raw) + raw), *Vs = Ks + BK * HD,
         *Qs = Vs + BK * HD, *Gs = Qs + 2 * BQ * HD, *Ss = Gs + 2 * BQ * HD;
    float *DQ = reinterpret_cast<float *>(Ss + BK * BQ);
    __shared__ __align__(16) float Ls[2][BQ], Ds[2][BQ];
    __shared__ __align__(16) int Fs[2][BQ];
    int b = blockIdx.z, g = blockIdx.x, group = H / KV, kb = blockIdx.y;
    int k0 = kb * BK; /* the most work first: early keys meet every later query (grid_longest_first) */
    int qt_hi = (T - 1) / BQ, nq = qt_hi - k0 / BQ + 1, iters = nq * group;
    /* iteration i: query head g * group + i % group, query tile qt_hi - i / group */
    auto head = [&](int i) { return g * group + i % group; };
    auto tile_of = [&](int i) { return ((int64_t)b * H + head(i)) * (qt_hi + 1) + qt_hi - i / group; };

    if (threadIdx.x >= NC) { /* the third warpgroup: its first warp writes dQ, the others leave */
        set_max_registers<24>();
        if (threadIdx.x >= NC + 32) return;
        for (int buf = 0; buf < 2 && buf < iters; buf++) bar_arrive(BAR_EMPTY + buf, NC + 32);
        for (int i = 0; i < iters; i++) {
            int buf = i & 1;
            bar_sync(BAR_FULL + buf, NC + 32);
            if (threadIdx.x == NC) {
                int64_t tile = tile_of(i);
                while (load_acquire(count + tile) < kb) {
                }
                asm volatile("fence.proxy.async.global;\n" ::: "memory");
                bulk_add(acc + tile * PART, DQ + buf * PART, PART * 4);
                asm volatile("fence.proxy.async.global;\n" ::: "memory");
                __threadfence();
                store_release(count + tile, kb + 1);
            }
            __syncwarp();
            if (i + 2 < iters) bar_arrive(BAR_EMPTY + buf, NC + 32);
        }
        return;
    }

    set_max_registers<240>();
    int wg = threadIdx.x / WG, w = threadIdx.x >> 5, ti = threadIdx.x & 3;
    int64_t ldq = (int64_t)H * HD, ldk = (int64_t)KV * HD;
    int64_t koff = (int64_t)b * T * ldk + (int64_t)g * HD;
    int ca = k0 + w * 16 + ((threadIdx.x & 31) >> 2); /* this thread's keys: ca, ca + 8 */
    auto issue = [&](int i) {
        int t0 = (qt_hi - i / group) * BQ;
        int64_t qoff = (int64_t)b * T * ldq + (int64_t)head(i) * HD;
        load_tile<HD, BQ, NC>(Qs + (i & 1) * BQ * HD, q + qoff, ldq, t0, T);
        load_tile<HD, BQ, NC>(Gs + (i & 1) * BQ * HD, dout + qoff, ldq, t0, T);
        load_query_values<BQ>(Ls[i & 1], Ds[i & 1], Fs[i & 1], lse, delta, doc, b, head(i), H, T, t0);
    };
    /* the consumers' barrier; shared-memory writes before it are visible to wgmma after */
    auto consumers_ready = [] {
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        bar_sync(BAR_CONSUMERS, NC);
    };
    load_tile<HD, BK, NC>(Ks, k + koff, ldk, k0, T);
    load_tile<HD, BK, NC>(Vs, v + koff, ldk, k0, T);
    issue(0);
    cp_commit();
    uint64_t kd = desc_k(Ks + wg * 64 * 64), vd = desc_k(Vs + wg * 64 * 64); /* this warpgroup's keys */
    uint64_t kn = desc_mn<BK>(Ks + wg * BK * 64), sd = desc_mn<BK>(Ss);    /* K's columns of this warpgroup; dS^T */
    float ak[HD / 8][4], av[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) ak[n][e] = av[n][e] = 0.0f;

    for (int i = 0; i < iters; i++) {
        int buf = i & 1, t0 = (qt_hi - i / group) * BQ;
        cp_wait<0>();
        consumers_ready(); /* iteration i's tiles are in; every consumer is done with iteration i - 1 */
        if (i + 1 < iters) {
            issue(i + 1);
            cp_commit();
        }
        const bf16 *Qt = Qs + buf * BQ * HD, *Gt = Gs + buf * BQ * HD;
        float s[BQ / 8][4], dp[BQ / 8][4];
        kv_scores<BK, BQ, HD>(s, dp, kd, vd, Qt, Gt, Ls[buf], Ds[buf], Fs[buf], t0, ca, T,
                              doc || t0 < k0 + wg * 64 + 64 || t0 + BQ > T, scale_log2);
        uint32_t pa[BQ / 16][4], da[BQ / 16][4];
#pragma unroll
        for (int ks = 0; ks < BQ / 16; ks++) {
            acc_to_a(pa[ks], s, ks);
            acc_to_a(da[ks], dp, ks);
            /* dS^T into shared memory: keys ca - k0 (+ 8) as rows, the 16 queries of slab ks as columns */
            int r = ca - k0, c = ks * 16 + 2 * ti;
            *reinterpret_cast<uint32_t *>(Ss + at<BK>(r, c)) = da[ks][0];
            *reinterpret_cast<uint32_t *>(Ss + at<BK>(r + 8, c)) = da[ks][1];
            *reinterpret_cast<uint32_t *>(Ss + at<BK>(r, c + 8)) = da[ks][2];
            *reinterpret_cast<uint32_t *>(Ss + at<BK>(r + 8, c + 8)) = da[ks][3];
        }
        kv_accumulate<BQ, HD>(av, ak, pa, da, desc_mn<BQ>(Gt), desc_mn<BQ>(Qt));
        consumers_ready(); /* both warpgroups' dS^T is in */
        wg_wait<0>();      /* dV and dK done: P and dS leave the registers to dQ's accumulators */
        float dqa[NH / 8][4];
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < BK / 16; ks++) mma_ss<NH, 1>(&dqa[0][0], sd + mn_step(ks), kn + mn_step(ks), ks > 0);
        wg_commit();
        wg_wait<0>();
        settled<NH>(dqa);
        /* the part into DQ[buf] once the writer is done with it, thread by thread in 8-byte pieces (the layout
           scale_dq_k reads) */
        bar_sync(BAR_EMPTY + buf, NC + 32);
        float2 *part = reinterpret_cast<float2 *>(DQ + buf * PART) + threadIdx.x;
#pragma unroll
        for (int n = 0; n < NH / 8; n++) {
            part[(2 * n) * NC] = make_float2(dqa[n][0], dqa[n][1]);
            part[(2 * n + 1) * NC] = make_float2(dqa[n][2], dqa[n][3]);
        }
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        bar_arrive(BAR_FULL + buf, NC + 32);
    }
    kv_store<HD>(dk + koff, dv + koff, ldk, ak, av, ca, T, scale);
#else
    __trap();
#endif
}

/* dq from the tiles' fp32 sums (one block of 2 * WG threads a tile, in
 * wg_bwd_k's layout: thread x's rows 16 (x / 32 % 4) + x % 32 / 4 (+ 8), its
 * columns 64 (x / 128) + 8 n + 2 (x % 4) (+ 1)), times scale, in bf16. */
template <int HD>
__global__ void __launch_bounds__(2 * WG) scale_dq_k(bf16 *dq, const float *acc, int T, int H, float scale) {
    constexpr int BQ = CUDA_ATTN_DQ_ROWS, NC = 2 * WG;
    int64_t tile = blockIdx.x;
    int tiles = (T + BQ - 1) / BQ, x = threadIdx.x, qt = (int)(tile % tiles);
    int64_t bh = tile / tiles, b = bh / H, h = bh % H;
    int r = qt * BQ + 16 * (x / 32 % 4) + x % 32 / 4, c = 64 * (x / WG) + 2 * (x % 4);
    const float2 *part = reinterpret_cast<const float2 *>(acc + tile * BQ * HD) + x;
    bf16 *row = dq + ((int64_t)b * T + r) * H * HD + h * HD + c;
#pragma unroll
    for (int n = 0; n < HD / 16; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            float2 v = part[(2 * n + e) * NC];
            if (r + 8 * e < T)
                *reinterpret_cast<__nv_bfloat162 *>(row + (int64_t)8 * e * H * HD + 8 * n) =
                    __floats2bfloat162_rn(v.x * scale, v.y * scale);
        }
}

/* A kernel may take more than 48 KiB of dynamic shared memory only when asked. */
/* The grid of a causal kernel over tiles of `tile` rows of T, per head and
 * sequence: heads along x and tiles along y, so that the blocks start (in
 * x-then-y order) tile by tile across every head, and a kernel that maps y to
 * its tiles the longest first runs all heads' longest tiles before any short
 * one. With tiles along x, one head's long tiles would start after every
 * earlier head's short ones: fewer heads (a GQA dk/dv: one block per kv head)
 * left a tail of long blocks on a few SMs. */
static dim3 grid_longest_first(int T, int tile, int heads, int B) { return dim3(heads, (T + tile - 1) / tile, B); }

template <typename K>
int launch_smem(K kernel, int bytes) {
    return (int)cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

/* The forward: Q and FWD_STAGES tiles each of K and V in shared memory. */
template <int HD>
int fwd(ms_cuda_stream s, bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int32_t *doc,
        int B, int T, int H, int KV) {
    int smem = (128 + 2 * FWD_STAGES * 128) * HD * 2 + 1024;
    auto kern = wg_fwd_k<HD>;
    int e = launch_smem(kern, smem);
    if (e) return e;
    kern<<<grid_longest_first(T, 128, H, B), 3 * WG, smem, s>>>(out, lse, q, k, v, doc, T, H, KV,
                                                                LOG2E / sqrtf((float)HD));
    return launched();
}

/* The fused backward over the work cuda_attention_bwd_scratch sizes, carved in
 * the order it counts: D, the tiles' counters and fp32 sums of dq (both
 * zeroed here), then dq from them. */
template <int HD>
int bwd_fused(ms_cuda_stream s, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
              const bf16 *v, const float *lse, void *work, const int32_t *doc, int B, int T, int H, int KV) {
    constexpr int BK = 128, BQ = CUDA_ATTN_DQ_ROWS;
    int64_t tiles = (int64_t)B * H * ((T + BQ - 1) / BQ);
    const float *delta = (const float *)work;
    int *count = (int *)((char *)work + cuda_align256(4 * (int64_t)B * H * T));
    float *acc = (float *)((char *)count + cuda_align256(4 * tiles));
    int e = (int)cudaMemsetAsync(count, 0, (char *)(acc + tiles * BQ * HD) - (char *)count, s);
    if (e) return e;
    int smem = (2 * BK + 4 * BQ) * HD * 2 + BK * BQ * 2 + 2 * BQ * HD * 4 + 1024;
    auto kern = wg_bwd_k<HD>;
    if ((e = launch_smem(kern, smem))) return e;
    float scale = 1.0f / sqrtf((float)HD);
    kern<<<grid_longest_first(T, BK, KV, B), 3 * WG, smem, s>>>(acc, count, dk, dv, dout, q, k, v, lse, delta, doc, T,
                                                                H, KV, scale, scale * LOG2E);
    if ((e = launched())) return e;
    scale_dq_k<HD><<<(unsigned)tiles, 2 * WG, 0, s>>>(dq, acc, T, H, scale);
    return launched();
}

/* parts: 1 the dq kernel, 2 the dk/dv kernel (the workbench times them apart).
 * QWG warpgroups a dq block; NWG a dk/dv block, and KVOCC dk/dv blocks an SM:
 * 3 (registers capped at 168) fits head dim 64 with one warpgroup without
 * spilling. */
template <int HD, int QWG, int NWG, int KVOCC>
int bwd(ms_cuda_stream s, bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const bf16 *q, const bf16 *k,
        const bf16 *v, const float *lse, const float *delta, const int32_t *doc, int B, int T, int H, int KV,
        int parts) {
    float scale = 1.0f / sqrtf((float)HD), sl = scale * LOG2E;
    int e;
    if (parts & 1) {
        constexpr int BM = QWG * 64;
        int smem_dq = (2 * BM + 5 * 64) * HD * 2 + 1024;
        auto kq = wg_dq_k<HD, QWG>;
        if ((e = launch_smem(kq, smem_dq))) return e;
        kq<<<grid_longest_first(T, BM, H, B), QWG * WG, smem_dq, s>>>(dq, dout, q, k, v, lse, delta, doc, T, H, KV,
                                                                     scale, sl);
        if ((e = launched())) return e;
    }
    if (parts & 2) {
        constexpr int BK = NWG * 64;
        int smem_kv = (2 * BK + 4 * 64) * HD * 2 + 1024;
        auto kk = wg_dkdv_k<HD, NWG, KVOCC>;
        if ((e = launch_smem(kk, smem_kv))) return e;
        kk<<<grid_longest_first(T, BK, KV, B), NWG * WG, smem_kv, s>>>(dk, dv, dout, q, k, v, lse, delta, doc, T, H,
                                                                     KV, scale, sl);
        if ((e = launched())) return e;
    }
    return 0;
}

} // namespace

extern "C" int cuda_flash_wgmma_ready(void) {
    int dev, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
        return 0;
    return major == 9 && minor == 0;
}

extern "C" int cuda_flash_wgmma_fwd(ms_cuda_stream s, void *out, float *lse, const void *q, const void *k,
                                    const void *v, const int32_t *doc, int B, int T, int H, int KV, int hd) {
    if (!cuda_flash_supported(1, hd, H, KV)) return (int)cudaErrorInvalidValue;
    if (B == 0 || T == 0) return 0;
#define ARGS s, (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, doc, B, T, H, KV
    return hd == 64 ? fwd<64>(ARGS) : fwd<128>(ARGS);
#undef ARGS
}

extern "C" int cuda_flash_wgmma_bwd(ms_cuda_stream s, void *dq, void *dk, void *dv, const void *dout, const void *q,
                                    const void *k, const void *v, const float *lse, void *work, const int32_t *doc,
                                    int B, int T, int H, int KV, int hd, int nwg_q, int nwg_kv, int occ_kv,
                                    int parts) {
    bool fused = nwg_q == 0;
    if (!cuda_flash_supported(1, hd, H, KV) || (nwg_q != 1 && nwg_q != 2 && !fused) ||
        (nwg_kv != 1 && nwg_kv != 2) || (occ_kv != 1 && occ_kv != 3) ||
        ((occ_kv == 3 || nwg_q == 1) && (hd != 64 || nwg_kv != 1)) ||
        (fused && (!cuda_attention_fused_bwd(hd) || nwg_kv != 2 || occ_kv != 1 || parts != 3)))
        return (int)cudaErrorInvalidValue;
    if (B == 0 || T == 0) return 0;
    if (fused)
        return bwd_fused<128>(s, (bf16 *)dq, (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q,
                              (const bf16 *)k, (const bf16 *)v, lse, work, doc, B, T, H, KV);
#define ARGS s, (bf16 *)dq, (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)k, \
             (const bf16 *)v, lse, (const float *)work, doc, B, T, H, KV, parts
    if (hd == 128) return nwg_kv == 1 ? bwd<128, 2, 1, 1>(ARGS) : bwd<128, 2, 2, 1>(ARGS);
    if (nwg_q == 1) return occ_kv == 3 ? bwd<64, 1, 1, 3>(ARGS) : bwd<64, 1, 1, 1>(ARGS);
    return occ_kv == 3 ? bwd<64, 2, 1, 3>(ARGS) : nwg_kv == 1 ? bwd<64, 2, 1, 1>(ARGS) : bwd<64, 2, 2, 1>(ARGS);
#undef ARGS
}
