/*
 * kernels/bench/elementwise.c — the elementwise workbench: swiglu fwd/bwd,
 * rope, rmsnorm fwd/bwd (kernels/cuda/swiglu.cu, rope.cu, rmsnorm.cu),
 * attention's D = rowsum(dout * out) (attention.cu) and the LM head's
 * cross-entropy with its logit gradient (xent.cu), against references kept
 * here (the one-element-a-thread grid-stride kernels the vectorized ones
 * replaced; rope and D, whose scalar kernels the library keeps as its
 * fallbacks, computed on the host instead), on fresh random inputs, then
 * timed with CUDA events (median of 10 after 3 warm-ups).
 *
 *   build/bench-elementwise
 *
 * CUDA source despite the .c: the Makefile compiles it with nvcc -x cu, so the
 * reference kernels live beside the harness. Shapes: the Llama-3.2-1B layer
 * (T=4096, dim 2048, ffn 8192, 32 heads of 64) and Llama-3-8B's (T=8192, dim
 * 4096, ffn 14336, 32 heads of 128), bf16; then a ragged shape (odd sizes, a
 * head dim of 36, pointers one element off 16 bytes) in bf16 and fp32 for the
 * fallback paths, checked but not worth timing. Checks: swiglu and rope
 * bitwise; rstd, D and dw within 1e-6 (relative L2: a reduction's order may
 * change), y and dx within one bf16 rounding step of the reference (the
 * reduction feeds them). Prints one "BENCH elementwise ..." line per kernel and
 * shape: time, GB/s over the bytes each kernel must move, and the check; exits
 * 1 on any failure. rmsnorm bwd is timed as the engine runs it: dx, then dw's
 * two kernels. The cross-entropy (rows of a 128K vocabulary, the gradient in
 * bf16 in place as the engine asks under bf16) is timed beside its reference;
 * losses within 1e-6, gradients within one bf16 rounding step (fp32: 8 steps of 2^-22).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cuda/common.cuh"



/* ---- the reference kernels: one element (pair, row) a thread, in the plain order ---- */

__device__ float ref_sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

template <typename A>
__global__ void ref_swiglu_fwd(A *h, const A *gate, const A *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = ld(gate, i);
        st(h, i, g * ref_sigmoid(g) * ld(up, i));
    }
}

template <typename A>
__global__ void ref_swiglu_bwd(A *dgate, A *dup, const A *dh, const A *gate, const A *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = ld(gate, i), s = ref_sigmoid(g), d = ld(dh, i), u = ld(up, i);
        st(dup, i, d * g * s);
        st(dgate, i, d * u * s * (1.0f + g * (1.0f - s)));
    }
}

template <typename A>
__global__ void ref_rmsnorm_fwd(A *y, float *rstd, const A *x, const A *w, int dim, float eps) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const A *xr = x + row * dim;
    float ss = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) { float v = ld(xr, j); ss += v * v; }
    ss = block_sum(ss, sh);
    float r = rsqrtf(ss / dim + eps);
    if (threadIdx.x == 0) rstd[row] = r;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) st(y + row * dim, j, ld(xr, j) * r * ld(w, j));
}

template <typename A>
__global__ void ref_rmsnorm_dx(A *dx, const A *dy, const A *x, const A *w, const float *rstd, int dim) {
    __shared__ float sh[32];
    int64_t row = blockIdx.x;
    const A *xr = x + row * dim, *gr = dy + row * dim;
    float c = 0.0f;
    for (int j = threadIdx.x; j < dim; j += blockDim.x) c += ld(gr, j) * ld(w, j) * ld(xr, j);
    c = block_sum(c, sh);
    float r = rstd[row], k = c * r * r * r / dim;
    for (int j = threadIdx.x; j < dim; j += blockDim.x)
        st(dx + row * dim, j, ld(dx + row * dim, j) + r * ld(w, j) * ld(gr, j) - k * ld(xr, j));
}

/* dw[c] += sum over rows of dy * x * rstd, in fp64 */
template <typename A>
__global__ void ref_rmsnorm_dw(float *dw, const A *dy, const A *x, const float *rstd, int64_t n, int dim) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    double acc = 0.0;
    for (int64_t r = 0; r < n; r++) acc += (double)(ld(dy, r * dim + c) * ld(x, r * dim + c) * rstd[r]);
    dw[c] += (float)acc;
}

/* the cross-entropy of one row a block in three reads: the maximum, the sum, the gradient */
__global__ void ref_xent(float *logits, double *loss, const int32_t *targets, int vocab, int64_t ld_f, int grad,
                            int bf16_grad, float grad_scale) {
    __shared__ float sh[32];
    __shared__ float shm;
    int row = blockIdx.x, target = targets[row];
    float *z = logits + (int64_t)row * ld_f;
    if (target < 0) {
        if (threadIdx.x == 0) loss[row] = 0.0;
        if (grad) {
            if (bf16_grad) for (int j = threadIdx.x; j < vocab; j += blockDim.x) ((bf16 *)z)[j] = __float2bfloat16_rn(0.0f);
            else for (int j = threadIdx.x; j < vocab; j += blockDim.x) z[j] = 0.0f;
        }
        return;
    }
    float m = -INFINITY;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) m = fmaxf(m, z[j]);
    m = warp_max(m);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = m;
    __syncthreads();
    if (threadIdx.x < 32) {
        float x = threadIdx.x < (blockDim.x + 31) / 32 ? sh[threadIdx.x] : -INFINITY;
        x = warp_max(x);
        if (threadIdx.x == 0) shm = x;
    }
    __syncthreads();
    m = shm;
    float sum = 0.0f;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(z[j] - m);
    sum = block_sum(sum, sh);
    float zt = z[target];
    if (threadIdx.x == 0) loss[row] = (double)m + log((double)sum) - (double)zt;
    if (!grad) return;
    float inv = 1.0f / sum;
    /* in increasing chunks of blockDim: read a chunk, then write it; a bf16 write of
     * element j lands on fp32 element j/2, already read */
    for (int c0 = 0; c0 < vocab; c0 += blockDim.x) {
        int j = c0 + threadIdx.x;
        float g = 0.0f;
        if (j < vocab) g = (expf(z[j] - m) * inv - (j == target ? 1.0f : 0.0f)) * grad_scale;
        __syncthreads();
        if (j < vocab) {
            if (bf16_grad) ((bf16 *)z)[j] = __float2bfloat16_rn(g);
            else z[j] = g;
        }
        __syncthreads();
    }
}

/* ---- host side ---- */

typedef struct shape { const char *name; int T, dim, ffn, H, hd, vocab, bf16, off, timed; } shape;


/* Buffers are allocated with a 16-byte margin and used from base + off elements (off 1: misaligned). */
typedef struct buf { char *base; void *p; long n; int eb; } buf;
static buf alloc_buf(long n, int eb, int off) {
    buf b = {NULL, NULL, n, eb};
    CK(cudaMalloc((void **)&b.base, (size_t)n * eb + 16));
    CK(cudaMemset(b.base, 0xff, (size_t)n * eb + 16)); /* poison: NaN in bf16 and fp32 */
    b.p = b.base + (size_t)off * eb;
    return b;
}
/* n values uniform in [-scale, scale] (in bf16 when eb is 2) */
static buf rand_buf(long n, int eb, int off, float scale) {
    buf b = alloc_buf(n, eb, off);
    void *h = malloc((size_t)n * eb);
    for (long i = 0; i < n; i++) {
        float v = scale * uniform();
        if (eb == 2) ((uint16_t *)h)[i] = bf16_bits(v);
        else ((float *)h)[i] = v;
    }
    CK(cudaMemcpy(b.p, h, (size_t)n * eb, cudaMemcpyHostToDevice));
    free(h);
    return b;
}
static void copy_buf(buf *d, const buf *s) { CK(cudaMemcpy(d->p, s->p, (size_t)s->n * s->eb, cudaMemcpyDeviceToDevice)); }
static void free_buf(buf *b) { cudaFree(b->base); }

static double *to_host(const buf *b) {
    void *h = malloc((size_t)b->n * b->eb);
    double *d = (double *)malloc(sizeof(double) * (size_t)b->n);
    CK(cudaMemcpy(h, b->p, (size_t)b->n * b->eb, cudaMemcpyDeviceToHost));
    for (long i = 0; i < b->n; i++) d[i] = b->eb == 2 ? bf16_value(((uint16_t *)h)[i]) : ((float *)h)[i];
    free(h);
    return d;
}

/* Host values into b, rounded to bf16 (to nearest even) when b holds bf16. */
static void from_host(buf *b, const double *v) {
    void *h = malloc((size_t)b->n * b->eb);
    for (long i = 0; i < b->n; i++) {
        if (b->eb == 2) ((uint16_t *)h)[i] = bf16_bits((float)v[i]);
        else ((float *)h)[i] = (float)v[i];
    }
    CK(cudaMemcpy(b->p, h, (size_t)b->n * b->eb, cudaMemcpyHostToDevice));
    free(h);
}

/* The host's references for rope and attention's D: written apart from the
 * kernels (the library's scalar fallbacks included), so that every path of
 * the library is checked against something that is not itself. */

/* x (T, heads, hd) rotated in place by the angles in cs (T, hd/2, cos and sin),
 * in float: each product rounded, then the sum, as the kernels round (a
 * product of two floats is exact in double, so rounding it to float cannot
 * be fused into the sum by the compiler). */
static void host_rope(double *x, const float *cs, int T, int heads, int hd) {
    int half = hd / 2;
    for (long row = 0; row < (long)T * heads; row++) {
        const float *at = cs + (size_t)(row / heads) * half * 2;
        double *xr = x + row * hd;
        for (int p = 0; p < half; p++) {
            float a = (float)xr[p], b = (float)xr[p + half], c = at[2 * p], s = at[2 * p + 1];
            float ac = (float)((double)a * c), bs = (float)((double)b * s);
            float bc = (float)((double)b * c), as = (float)((double)a * s);
            xr[p] = ac - bs;
            xr[p + half] = bc + as;
        }
    }
}

/* D (H, T) = the sum over hd of dout * out, rows of (T, H, hd), in double */
static double *host_delta(const double *dout, const double *out, int T, int H, int hd) {
    double *d = (double *)malloc(sizeof(double) * (size_t)T * H);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            size_t r = ((size_t)t * H + h) * hd;
            double acc = 0;
            for (int e = 0; e < hd; e++) acc += dout[r + e] * out[r + e];
            d[(size_t)h * T + t] = acc;
        }
    return d;
}

/* Elements whose bits differ (NaN counts as differing from everything but the same NaN bits). */
static long bit_mismatches(const buf *a, const buf *b) {
    size_t bytes = (size_t)a->n * a->eb;
    unsigned char *x = (unsigned char *)malloc(bytes), *y = (unsigned char *)malloc(bytes);
    CK(cudaMemcpy(x, a->p, bytes, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(y, b->p, bytes, cudaMemcpyDeviceToHost));
    long bad = 0;
    for (long i = 0; i < a->n; i++) bad += memcmp(x + i * a->eb, y + i * a->eb, (size_t)a->eb) != 0;
    free(x);
    free(y);
    return bad;
}

/* ||a - b|| / ||b|| */
static double rel_l2(const buf *a, const buf *b) {
    double *x = to_host(a), *y = to_host(b), num = 0, den = 0;
    for (long i = 0; i < a->n; i++) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
    free(x);
    free(y);
    return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0);
}

/* Worst |a - b| in units of b's rounding step plus an absolute 1e-5 (the step 2^-7 |b| in bf16, 2^-22 |b| in
 * fp32; the floor covers values a reordered reduction leaves near zero by cancellation); NaN is infinite. */
static double worst_steps(const buf *a, const buf *b) {
    double *x = to_host(a), *y = to_host(b), w = 0, step = a->eb == 2 ? 1.0 / 128 : 1.0 / (1 << 22);
    for (long i = 0; i < a->n; i++) {
        double d = fabs(x[i] - y[i]), u = step * fabs(y[i]) + 1e-5;
        double s = d == 0 ? 0 : d / u;
        if (!(s <= w)) w = isnan(s) ? INFINITY : s;
    }
    free(x);
    free(y);
    return w;
}

/* Worst |a - b| over the first `vocab` gradients of each of `rows` rows of logits (row stride vocab floats; bf16
 * gradients fill a row's first half), in units of b's rounding step (2^-7 |b| in bf16, else 2^-22 |b|). */
static double xent_grad_steps(const buf *a, const buf *b, long rows, int vocab, int bf16) {
    size_t bytes = (size_t)rows * vocab * 4;
    char *x = (char *)malloc(bytes), *y = (char *)malloc(bytes);
    CK(cudaMemcpy(x, a->p, bytes, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(y, b->p, bytes, cudaMemcpyDeviceToHost));
    double w = 0, step = bf16 ? 1.0 / 128 : 1.0 / (1 << 22);
    for (long r = 0; r < rows; r++)
        for (int j = 0; j < vocab; j++) {
            size_t at = (size_t)r * vocab * 4 + (size_t)j * (bf16 ? 2 : 4);
            double p, q;
            if (bf16) p = bf16_value(*(uint16_t *)(x + at)), q = bf16_value(*(uint16_t *)(y + at));
            else p = *(float *)(x + at), q = *(float *)(y + at);
            double d = fabs(p - q), s = d == 0 ? 0 : d / (step * fabs(q) + 1e-30);
            if (!(s <= w)) w = isnan(s) ? INFINITY : s;
        }
    free(x);
    free(y);
    return w;
}

/* The call being timed, as a tagged closure over the shape's buffers. */
typedef struct bufs {
    buf gate, up, h[2], dh, dg[2], du[2], x, y[2], w, rstd[2], dy, dx[2], dx0, dw[2], q[2], q0, cs, dout, out, d[2];
    buf logits[2], loss[2], targets;
    void *scratch;
} bufs;
enum { SWIGLU_FWD, SWIGLU_BWD, ROPE, RMS_FWD, RMS_BWD, DELTA, XENT, XENT_REF };

static void launch(int what, cudaStream_t st, bufs *u, const shape *s) {
    ms_cuda_stream ms = (ms_cuda_stream)st;
    int b = s->bf16;
    long nf = (long)s->T * s->ffn;
    switch (what) {
    case SWIGLU_FWD: CK(cuda_swiglu_fwd(ms, b, u->h[1].p, u->gate.p, u->up.p, nf)); break;
    case SWIGLU_BWD: CK(cuda_swiglu_bwd(ms, b, u->dg[1].p, u->du[1].p, u->dh.p, u->gate.p, u->up.p, nf)); break;
    case ROPE: CK(cuda_rope(ms, b, u->q[1].p, (const float *)u->cs.p, 1, s->T, s->H, s->hd, 1.0f)); break;
    case RMS_FWD:
        CK(cuda_rmsnorm_fwd(ms, b, u->y[1].p, (float *)u->rstd[1].p, u->x.p, u->w.p, s->T, s->dim, 1e-5f));
        break;
    case RMS_BWD:
        CK(cuda_rmsnorm_bwd(ms, b, u->dx[1].p, (float *)u->dw[1].p, u->dy.p, u->x.p, u->w.p,
                            (const float *)u->rstd[0].p, s->T, s->dim, u->scratch));
        break;
    case DELTA: CK(cuda_attention_delta(ms, b, (float *)u->d[1].p, u->dout.p, u->out.p, 1, s->T, s->H, s->hd)); break;
    case XENT:
        CK(cuda_xent_rows(ms, (float *)u->logits[1].p, (double *)u->loss[1].p, (const int32_t *)u->targets.p, s->T,
                          s->vocab, 1, b, 1.0f / s->T));
        break;
    case XENT_REF:
        ref_xent<<<s->T, 1024, 0, st>>>((float *)u->logits[0].p, (double *)u->loss[0].p, (const int32_t *)u->targets.p,
                                        s->vocab, s->vocab, 1, b, 1.0f / s->T);
        CK(cudaGetLastError());
        break;
    }
}

/* One launch to time: what on a shape's buffers. */
typedef struct timing { int what; cudaStream_t st; bufs *u; const shape *s; } timing;
static void launch_timing(void *ctx) {
    timing *c = (timing *)ctx;
    launch(c->what, c->st, c->u, c->s);
}
static float timed(int what, cudaStream_t st, bufs *u, const shape *s) {
    timing c = {what, st, u, s};
    return bench_median_ms(st, launch_timing, &c);
}

static int report(const char *kernel, const shape *s, float ms, double bytes, int ok, const char *check) {
    if (s->timed)
        printf("BENCH elementwise %-11s %s: %.4f ms %6.0f GB/s | %s%s\n", kernel, s->name, ms, bytes / ms / 1e6, check,
               ok ? "" : "  FAILED");
    else printf("BENCH elementwise %-11s %s: (not timed) | %s%s\n", kernel, s->name, check, ok ? "" : "  FAILED");
    fflush(stdout);
    return !ok;
}

static int run(const shape *s) {
    int eb = s->bf16 ? 2 : 4, off = s->off, T = s->T, dim = s->dim, H = s->H, hd = s->hd;
    long nf = (long)T * s->ffn, nd = (long)T * dim, nq = (long)T * H * hd, nr = (long)T * H;
    bufs U, *u = &U;
    memset(u, 0, sizeof U);
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    int bad = 0;
    char msg[160];
    float t = 0;
    ACT_DISPATCH(s->bf16, {
        /* swiglu */
        u->gate = rand_buf(nf, eb, off, 4.0f), u->up = rand_buf(nf, eb, off, 2.0f), u->dh = rand_buf(nf, eb, off, 1.0f);
        for (int i = 0; i < 2; i++) {
            u->h[i] = alloc_buf(nf, eb, off), u->dg[i] = alloc_buf(nf, eb, off), u->du[i] = alloc_buf(nf, eb, off);
        }
        ref_swiglu_fwd<A><<<blocks_for(nf, 256), 256, 0, st>>>((A *)u->h[0].p, (const A *)u->gate.p,
                                                                (const A *)u->up.p, nf);
        ref_swiglu_bwd<A><<<blocks_for(nf, 256), 256, 0, st>>>((A *)u->dg[0].p, (A *)u->du[0].p, (const A *)u->dh.p,
                                                                (const A *)u->gate.p, (const A *)u->up.p, nf);
        CK(cudaGetLastError());
        launch(SWIGLU_FWD, st, u, s);
        launch(SWIGLU_BWD, st, u, s);
        CK(cudaStreamSynchronize(st));
        long m = bit_mismatches(&u->h[1], &u->h[0]);
        snprintf(msg, sizeof msg, "n=%ld, %ld of %ld elements differ in bits", nf, m, nf);
        if (s->timed) t = timed(SWIGLU_FWD, st, u, s);
        bad |= report("swiglu_fwd", s, t, 3.0 * eb * nf, m == 0, msg);
        m = bit_mismatches(&u->dg[1], &u->dg[0]) + bit_mismatches(&u->du[1], &u->du[0]);
        snprintf(msg, sizeof msg, "n=%ld, %ld of %ld elements differ in bits", nf, m, 2 * nf);
        if (s->timed) t = timed(SWIGLU_BWD, st, u, s);
        bad |= report("swiglu_bwd", s, t, 5.0 * eb * nf, m == 0, msg);
        free_buf(&u->gate), free_buf(&u->up), free_buf(&u->dh);
        for (int i = 0; i < 2; i++) free_buf(&u->h[i]), free_buf(&u->dg[i]), free_buf(&u->du[i]);

        /* rope: cs (T, hd/2, 2) of real angles, q (T, H, hd); the reference on the host */
        int half = hd / 2;
        float *hcs = (float *)malloc(sizeof(float) * 2 * (size_t)T * half);
        for (int tt = 0; tt < T; tt++)
            for (int p = 0; p < half; p++) {
                double a = tt * pow(500000.0, -2.0 * p / hd);
                hcs[((size_t)tt * half + p) * 2] = (float)cos(a), hcs[((size_t)tt * half + p) * 2 + 1] = (float)sin(a);
            }
        u->cs = alloc_buf(2L * T * half, 4, 0);
        CK(cudaMemcpy(u->cs.p, hcs, sizeof(float) * 2 * (size_t)T * half, cudaMemcpyHostToDevice));
        u->q0 = rand_buf(nq, eb, off, 2.0f), u->q[0] = alloc_buf(nq, eb, off), u->q[1] = alloc_buf(nq, eb, off);
        copy_buf(&u->q[1], &u->q0);
        double *hq = to_host(&u->q0);
        host_rope(hq, hcs, T, H, hd);
        from_host(&u->q[0], hq);
        free(hq), free(hcs);
        launch(ROPE, st, u, s);
        CK(cudaStreamSynchronize(st));
        m = bit_mismatches(&u->q[1], &u->q[0]);
        snprintf(msg, sizeof msg, "H=%d hd=%d, %ld of %ld elements differ in bits", H, hd, m, nq);
        if (s->timed) t = timed(ROPE, st, u, s);
        bad |= report("rope", s, t, 2.0 * eb * nq + 4.0 * T * hd, m == 0, msg);
        free_buf(&u->cs), free_buf(&u->q0), free_buf(&u->q[0]), free_buf(&u->q[1]);

        /* rmsnorm fwd, then bwd (dx += and dw +=) from the reference's rstd */
        u->x = rand_buf(nd, eb, off, 2.0f), u->w = rand_buf(dim, eb, off, 1.5f), u->dy = rand_buf(nd, eb, off, 1.0f);
        u->dx0 = rand_buf(nd, eb, off, 0.5f);
        for (int i = 0; i < 2; i++) {
            u->y[i] = alloc_buf(nd, eb, off), u->rstd[i] = alloc_buf(T, 4, 0), u->dx[i] = alloc_buf(nd, eb, off);
            u->dw[i] = alloc_buf(dim, 4, 0);
            CK(cudaMemset(u->dw[i].p, 0, sizeof(float) * (size_t)dim));
            copy_buf(&u->dx[i], &u->dx0);
        }
        CK(cudaMalloc(&u->scratch, (size_t)cuda_rmsnorm_bwd_scratch(T, dim)));
        int rt = dim >= 1024 ? 1024 : (dim + 31) / 32 * 32;
        ref_rmsnorm_fwd<A><<<T, rt, 0, st>>>((A *)u->y[0].p, (float *)u->rstd[0].p, (const A *)u->x.p,
                                             (const A *)u->w.p, dim, 1e-5f);
        ref_rmsnorm_dx<A><<<T, rt, 0, st>>>((A *)u->dx[0].p, (const A *)u->dy.p, (const A *)u->x.p,
                                            (const A *)u->w.p, (const float *)u->rstd[0].p, dim);
        ref_rmsnorm_dw<A><<<(dim + 127) / 128, 128, 0, st>>>((float *)u->dw[0].p, (const A *)u->dy.p,
                                                             (const A *)u->x.p, (const float *)u->rstd[0].p, T, dim);
        CK(cudaGetLastError());
        launch(RMS_FWD, st, u, s);
        launch(RMS_BWD, st, u, s);
        CK(cudaStreamSynchronize(st));
        double er = rel_l2(&u->rstd[1], &u->rstd[0]), wy = worst_steps(&u->y[1], &u->y[0]);
        snprintf(msg, sizeof msg, "dim=%d, rstd rel err %.1e, y worst %.2f rounding steps", dim, er, wy);
        if (s->timed) t = timed(RMS_FWD, st, u, s);
        bad |= report("rmsnorm_fwd", s, t, 2.0 * eb * nd + 4.0 * T, er <= 1e-6 && wy <= 1, msg);
        double wx = worst_steps(&u->dx[1], &u->dx[0]), ew = rel_l2(&u->dw[1], &u->dw[0]);
        snprintf(msg, sizeof msg, "dim=%d, dx worst %.2f rounding steps, dw rel err %.1e", dim, wx, ew);
        if (s->timed) t = timed(RMS_BWD, st, u, s);
        /* dx: dy, x read, dx read and written; dw: dy, x read again */
        bad |= report("rmsnorm_bwd", s, t, 6.0 * eb * nd + 8.0 * T, wx <= 1 && ew <= 1e-6, msg);
        free_buf(&u->x), free_buf(&u->w), free_buf(&u->dy), free_buf(&u->dx0);
        for (int i = 0; i < 2; i++) free_buf(&u->y[i]), free_buf(&u->rstd[i]), free_buf(&u->dx[i]), free_buf(&u->dw[i]);
        cudaFree(u->scratch);

        /* D = rowsum(dout * out) over (T, H, hd) rows */
        u->dout = rand_buf(nq, eb, off, 1.0f), u->out = rand_buf(nq, eb, off, 1.0f);
        u->d[0] = alloc_buf(nr, 4, 0), u->d[1] = alloc_buf(nr, 4, 0);
        {
            double *hd_out = to_host(&u->dout), *h_out = to_host(&u->out), *hdelta = host_delta(hd_out, h_out, T, H, hd);
            from_host(&u->d[0], hdelta);
            free(hd_out), free(h_out), free(hdelta);
        }
        launch(DELTA, st, u, s);
        CK(cudaStreamSynchronize(st));
        double ed = rel_l2(&u->d[1], &u->d[0]);
        snprintf(msg, sizeof msg, "H=%d hd=%d, rel err %.1e", H, hd, ed);
        if (s->timed) t = timed(DELTA, st, u, s);
        bad |= report("attn_delta", s, t, 2.0 * eb * nq + 4.0 * nr, ed <= 1e-6, msg);
        free_buf(&u->dout), free_buf(&u->out), free_buf(&u->d[0]), free_buf(&u->d[1]);

        /* cross-entropy over (T, vocab) fp32 logits, one row in 16 ignored (target -1) */
        {
            int V = s->vocab;
            long nl = (long)T * V;
            int32_t *ht = (int32_t *)malloc(sizeof(int32_t) * (size_t)T);
            for (int r = 0; r < T; r++) ht[r] = r % 16 == 5 ? -1 : (int)((uniform() + 1.0f) * 0.5f * (V - 1));
            u->targets = alloc_buf(T, 4, 0);
            CK(cudaMemcpy(u->targets.p, ht, sizeof(int32_t) * (size_t)T, cudaMemcpyHostToDevice));
            free(ht);
            u->logits[0] = rand_buf(nl, 4, off, 8.0f), u->logits[1] = alloc_buf(nl, 4, off);
            copy_buf(&u->logits[1], &u->logits[0]);
            u->loss[0] = alloc_buf(T, 8, 0), u->loss[1] = alloc_buf(T, 8, 0);
            launch(XENT_REF, st, u, s);
            launch(XENT, st, u, s);
            CK(cudaStreamSynchronize(st));
            double *l0 = (double *)malloc(sizeof(double) * (size_t)T), *l1 = (double *)malloc(sizeof(double) * (size_t)T);
            CK(cudaMemcpy(l0, u->loss[0].p, sizeof(double) * (size_t)T, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(l1, u->loss[1].p, sizeof(double) * (size_t)T, cudaMemcpyDeviceToHost));
            double num = 0, den = 0;
            for (int r = 0; r < T; r++) num += (l1[r] - l0[r]) * (l1[r] - l0[r]), den += l0[r] * l0[r];
            double el = den > 0 ? sqrt(num / den) : INFINITY, wg = xent_grad_steps(&u->logits[1], &u->logits[0], T, V, s->bf16);
            free(l0), free(l1);
            snprintf(msg, sizeof msg, "vocab=%d, loss rel err %.1e, gradient worst %.2f rounding steps", V, el, wg);
            /* two reads of the fp32 logits, the gradient written in place */
            double bytes = (double)nl * (8 + (s->bf16 ? 2 : 4));
            if (s->timed) t = timed(XENT_REF, st, u, s);
            bad |= report("xent (ref)", s, t, bytes + 4.0 * nl, 1, "three reads");
            if (s->timed) t = timed(XENT, st, u, s);
            bad |= report("xent", s, t, bytes, el <= 1e-6 && wg <= (s->bf16 ? 1 : 8), msg);
            free_buf(&u->targets), free_buf(&u->logits[0]), free_buf(&u->logits[1]);
            free_buf(&u->loss[0]), free_buf(&u->loss[1]);
        }
    });
    cudaStreamDestroy(st);
    return bad;
}

int main(void) {
    static const shape shapes[] = {
        {"1B bf16 T=4096 dim=2048 ffn=8192", 4096, 2048, 8192, 32, 64, 128256, 1, 0, 1},
        {"8B bf16 T=8192 dim=4096 ffn=14336", 8192, 4096, 14336, 32, 128, 128256, 1, 0, 1},
        {"ragged bf16 misaligned", 333, 1000, 2731, 5, 36, 1000, 1, 1, 0},
        {"ragged bf16 aligned", 333, 1000, 2731, 3, 48, 1000, 1, 0, 0},
        {"ragged fp32 misaligned", 333, 1000, 2731, 5, 36, 1001, 0, 1, 0},
        {"ragged fp32 aligned", 333, 1004, 2731, 3, 48, 1004, 0, 0, 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) bad |= run(&shapes[i]);
    printf("%s\n", bad ? "elementwise: FAILED" : "elementwise: all checks passed");
    return bad;
}
