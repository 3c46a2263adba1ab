/*
 * kernels/cuda/embedding.cu — token embedding gather, and its backward as a
 * deterministic scatter-add: no float atomics, so the same inputs give the
 * same bits on every run.
 *
 * Backward, over the scratch kernels.h sizes (cuda_embedding_bwd_scratch):
 *   1. hist_k + scatter_k, once per 8-bit digit: a stable LSD radix sort of
 *      the (token, position) pairs by token. Each tile of CUDA_EMB_TILE pairs
 *      counts its digits, then places its pairs, in order, after those of
 *      smaller digits and of earlier tiles (warp match + per-warp counts
 *      give each pair its rank). The first pass keeps each tile's OR of the
 *      tokens; a pass above its highest set bit does nothing (a vocabulary
 *      of 128K runs 3 of the 4 passes).
 *   2. chunk_k: the sorted pairs in chunks of CUDA_EMB_CHUNK, a block per
 *      (chunk, 256 columns), walking the chunk in order. A token's run that
 *      lies inside the chunk is added to its row, starting from the row, in
 *      position order (the CPU reference's order). A run continuing from the
 *      previous chunk becomes the chunk's head partial; one starting here and
 *      continuing into the next becomes its tail partial (it starts from the row).
 *   3. join_k: the chunk where a crossing run starts sums its tail and the
 *      heads of the following chunks, in chunk order, into the token's row.
 * A token repeated many times is spread over many chunks, so no block walks
 * more than CUDA_EMB_CHUNK rows. Tokens must lie in [0, vocab), n below 2^31.
 */
#include "cuda/common.cuh"

#define SORT_THREADS 256 /* = the radix: in scatter_k thread d owns digit d */
#define SORT_ITEMS (CUDA_EMB_TILE / SORT_THREADS)
#define SORT_WARPS (SORT_THREADS / 32)
#define PASSES 4
#define RED_THREADS 128
#define RED_COLS 2 /* columns per thread: 256 per block */
static_assert(SORT_THREADS == 256 && CUDA_EMB_TILE % SORT_THREADS == 0, "a sort tile is whole rounds of 256 pairs");
static_assert(RED_THREADS * RED_COLS == 256, "a reduction block covers 256 columns");

template <typename A>
__global__ void embedding_fwd_k(A *y, const int32_t *tokens, const A *table, int64_t n, int dim) {
    int64_t total = n * dim;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / dim, c = i % dim;
        y[i] = table[(int64_t)tokens[r] * dim + c];
    }
}

/* The backward's scratch, carved in the order cuda_embedding_bwd_scratch counts it. */
struct emb_scratch {
    int32_t *keys[2], *pos[2]; /* (n) sorted tokens and their positions, ping-pong by pass */
    int32_t *hist;             /* (256, tiles) digit-major: a pass's count of each digit per tile */
    int32_t *tile_or;          /* (tiles) OR of each tile's tokens */
    float *head, *tail;        /* (chunks, dim) partial rows of runs crossing chunk borders */
};

static emb_scratch carve(void *base, int64_t n, int dim) {
    int64_t tiles = (n + CUDA_EMB_TILE - 1) / CUDA_EMB_TILE, chunks = (n + CUDA_EMB_CHUNK - 1) / CUDA_EMB_CHUNK;
    char *p = (char *)base;
    emb_scratch s;
    for (int k = 0; k < 2; k++) {
        s.keys[k] = (int32_t *)p, p += cuda_align256(4 * n);
        s.pos[k] = (int32_t *)p, p += cuda_align256(4 * n);
    }
    s.hist = (int32_t *)p, p += cuda_align256(4 * 256 * tiles);
    s.tile_or = (int32_t *)p, p += cuda_align256(4 * tiles);
    s.head = (float *)p, p += cuda_align256(4 * chunks * (int64_t)dim);
    s.tail = (float *)p;
    return s;
}

/* OR of all tokens (from the first pass's tiles), the same in every thread of the block. */
__device__ unsigned tokens_or(const int32_t *tile_or, int tiles, unsigned *sh) {
    if (threadIdx.x == 0) *sh = 0;
    __syncthreads();
    unsigned v = 0;
    for (int t = threadIdx.x; t < tiles; t += blockDim.x) v |= (unsigned)tile_or[t];
    if (v) atomicOr(sh, v);
    __syncthreads();
    return *sh;
}

/* Pass p sorts bits 8p..8p+7; it runs when p = 0 or some token has a bit there. */
__device__ __forceinline__ bool pass_runs(unsigned all, int pass) { return pass == 0 || (all >> (8 * pass)) != 0; }

/* The buffer the last pass that ran wrote (pass p writes keys[p & 1]). */
__device__ __forceinline__ int sorted_buffer(unsigned all) {
    int last = 0;
    for (int p = 1; p < PASSES; p++)
        if (pass_runs(all, p)) last = p;
    return last & 1;
}

__global__ void hist_k(const int32_t *tokens, emb_scratch s, int64_t n, int tiles, int pass) {
    __shared__ int cnt[256];
    __shared__ unsigned sh_or, sh_tile;
    if (pass > 0 && !pass_runs(tokens_or(s.tile_or, tiles, &sh_or), pass)) return;
    const int32_t *keys = pass == 0 ? tokens : s.keys[(pass - 1) & 1];
    cnt[threadIdx.x] = 0;
    if (threadIdx.x == 0) sh_tile = 0;
    __syncthreads();
    int64_t t0 = (int64_t)blockIdx.x * CUDA_EMB_TILE;
    unsigned mine = 0;
    for (int j = 0; j < SORT_ITEMS; j++) {
        int64_t i = t0 + j * SORT_THREADS + threadIdx.x;
        if (i < n) {
            unsigned k = (unsigned)keys[i];
            mine |= k;
            atomicAdd(&cnt[(k >> (8 * pass)) & 255], 1); /* integer counts: exact in any order */
        }
    }
    if (pass == 0 && mine) atomicOr(&sh_tile, mine);
    __syncthreads();
    s.hist[(int64_t)threadIdx.x * tiles + blockIdx.x] = cnt[threadIdx.x];
    if (pass == 0 && threadIdx.x == 0) s.tile_or[blockIdx.x] = (int32_t)sh_tile;
}

__global__ void scatter_k(const int32_t *tokens, emb_scratch s, int64_t n, int tiles, int pass) {
    __shared__ int base[256];               /* where this tile's next pair of each digit goes */
    __shared__ int wcnt[SORT_WARPS][256];   /* pairs of each digit per warp, this round */
    __shared__ int wsum[SORT_WARPS];
    __shared__ unsigned sh_or;
    if (pass > 0 && !pass_runs(tokens_or(s.tile_or, tiles, &sh_or), pass)) return;
    const int32_t *keys = pass == 0 ? tokens : s.keys[(pass - 1) & 1];
    const int32_t *pos = pass == 0 ? NULL : s.pos[(pass - 1) & 1];
    int32_t *kout = s.keys[pass & 1], *pout = s.pos[pass & 1];
    int d = threadIdx.x, lane = d & 31, warp = d >> 5;
    int total = 0, before = 0; /* pairs of digit d: in all tiles, in the tiles before this one */
    for (int t = 0; t < tiles; t++) {
        int h = s.hist[(int64_t)d * tiles + t];
        total += h;
        if (t < (int)blockIdx.x) before += h;
    }
    int incl = total; /* inclusive scan over digits: warp, then warps */
    for (int o = 1; o < 32; o <<= 1) {
        int v = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += v;
    }
    if (lane == 31) wsum[warp] = incl;
    for (int w = 0; w < SORT_WARPS; w++) wcnt[w][d] = 0;
    __syncthreads();
    int smaller = incl - total;
    for (int w = 0; w < warp; w++) smaller += wsum[w];
    base[d] = smaller + before;
    __syncthreads();
    int64_t t0 = (int64_t)blockIdx.x * CUDA_EMB_TILE;
    unsigned lower = (1u << lane) - 1u;
    for (int j = 0; j < SORT_ITEMS; j++) { /* a round: pairs t0 + 256 j .. in order, warp by warp, lane by lane */
        int64_t i = t0 + j * SORT_THREADS + d;
        bool valid = i < n;
        int32_t key = valid ? keys[i] : 0;
        int32_t at_pos = valid ? (pos ? pos[i] : (int32_t)i) : 0;
        int digit = valid ? (int)(((unsigned)key >> (8 * pass)) & 255u) : 256;
        unsigned peers = __match_any_sync(0xffffffffu, digit);
        int rank = __popc(peers & lower);
        if (valid && rank == 0) wcnt[warp][digit] = __popc(peers);
        __syncthreads();
        if (valid) {
            int at = base[digit] + rank;
            for (int w = 0; w < warp; w++) at += wcnt[w][digit];
            kout[at] = key;
            pout[at] = at_pos;
        }
        __syncthreads();
        int add = 0;
        for (int w = 0; w < SORT_WARPS; w++) {
            add += wcnt[w][d];
            wcnt[w][d] = 0;
        }
        base[d] += add;
        __syncthreads();
    }
}

/* Column j of this thread in its block's slice of 256. */
__device__ __forceinline__ int red_col(int j) {
    return blockIdx.y * (RED_THREADS * RED_COLS) + j * RED_THREADS + threadIdx.x;
}

template <typename A>
__global__ void chunk_k(float *dtable, const A *dy, emb_scratch s, int64_t n, int dim, int tiles) {
    __shared__ int32_t sk[CUDA_EMB_CHUNK], sp[CUDA_EMB_CHUNK];
    __shared__ int cont_prev, cont_next;
    __shared__ unsigned sh_or;
    int buf = sorted_buffer(tokens_or(s.tile_or, tiles, &sh_or));
    const int32_t *keys = s.keys[buf], *pos = s.pos[buf];
    int64_t c = blockIdx.x, c0 = c * CUDA_EMB_CHUNK, c1 = c0 + CUDA_EMB_CHUNK < n ? c0 + CUDA_EMB_CHUNK : n;
    int m = (int)(c1 - c0);
    for (int j = threadIdx.x; j < m; j += blockDim.x) {
        sk[j] = keys[c0 + j];
        sp[j] = pos[c0 + j];
    }
    if (threadIdx.x == 0) {
        cont_prev = c0 > 0 && keys[c0 - 1] == keys[c0];
        cont_next = c1 < n && keys[c1] == keys[c1 - 1];
    }
    __syncthreads();
    int col[RED_COLS];
    bool ok[RED_COLS];
#pragma unroll
    for (int j = 0; j < RED_COLS; j++) col[j] = red_col(j), ok[j] = col[j] < dim;
    for (int a = 0; a < m;) { /* one run of equal tokens [a, b) a turn; the same in every thread */
        int32_t tok = sk[a];
        int b = a + 1;
        while (b < m && sk[b] == tok) b++;
        bool head = a == 0 && cont_prev, tail = !head && b == m && cont_next;
        float *row = dtable + (int64_t)tok * dim;
        float acc[RED_COLS];
#pragma unroll
        for (int j = 0; j < RED_COLS; j++) acc[j] = ok[j] && !head ? row[col[j]] : 0.0f;
#pragma unroll 4
        for (int i = a; i < b; i++) {
            const A *g = dy + (int64_t)sp[i] * dim;
#pragma unroll
            for (int j = 0; j < RED_COLS; j++)
                if (ok[j]) acc[j] += ld(g, col[j]);
        }
        float *out = head ? s.head + c * dim : tail ? s.tail + c * dim : row;
#pragma unroll
        for (int j = 0; j < RED_COLS; j++)
            if (ok[j]) out[col[j]] = acc[j];
        a = b;
    }
}

__global__ void join_k(float *dtable, emb_scratch s, int64_t n, int dim, int tiles) {
    __shared__ unsigned sh_or;
    const int32_t *keys = s.keys[sorted_buffer(tokens_or(s.tile_or, tiles, &sh_or))];
    int64_t c = blockIdx.x, c0 = c * CUDA_EMB_CHUNK, c1 = c0 + CUDA_EMB_CHUNK < n ? c0 + CUDA_EMB_CHUNK : n;
    int32_t tok = keys[c1 - 1];
    /* only the chunk where a run crossing its end starts */
    if (c1 >= n || keys[c1] != tok || (c0 > 0 && keys[c0 - 1] == tok)) return;
#pragma unroll
    for (int j = 0; j < RED_COLS; j++) {
        int col = red_col(j);
        if (col >= dim) continue;
        float acc = s.tail[c * dim + col];
        for (int64_t k = c + 1;; k++) {
            acc += s.head[k * dim + col];
            int64_t end = (k + 1) * CUDA_EMB_CHUNK;
            if (end >= n || keys[end] != tok) break;
        }
        dtable[(int64_t)tok * dim + col] = acc;
    }
}

extern "C" int cuda_embedding_fwd(ms_cuda_stream s, int bf16f, void *y, const int32_t *tokens, const void *table,
                                  int64_t n, int dim) {
    ACT_DISPATCH(bf16f, embedding_fwd_k<A><<<blocks_for(n * dim, 256), 256, 0, s>>>((A *)y, tokens, (const A *)table, n, dim));
    return launched();
}

extern "C" int cuda_embedding_bwd(ms_cuda_stream st, int bf16f, float *dtable, const void *dy, const int32_t *tokens,
                                  int64_t n, int dim, void *scratch) {
    if (n == 0 || dim == 0) return 0;
    if (n > INT32_MAX || dim < 0 || !scratch) return (int)cudaErrorInvalidValue;
    emb_scratch s = carve(scratch, n, dim);
    int tiles = (int)((n + CUDA_EMB_TILE - 1) / CUDA_EMB_TILE);
    for (int pass = 0; pass < PASSES; pass++) {
        hist_k<<<tiles, SORT_THREADS, 0, st>>>(tokens, s, n, tiles, pass);
        scatter_k<<<tiles, SORT_THREADS, 0, st>>>(tokens, s, n, tiles, pass);
    }
    dim3 g((unsigned)((n + CUDA_EMB_CHUNK - 1) / CUDA_EMB_CHUNK), (unsigned)((dim + 255) / 256));
    ACT_DISPATCH(bf16f, chunk_k<A><<<g, RED_THREADS, 0, st>>>(dtable, (const A *)dy, s, n, dim, tiles));
    join_k<<<g, RED_THREADS, 0, st>>>(dtable, s, n, dim, tiles);
    return launched();
}
