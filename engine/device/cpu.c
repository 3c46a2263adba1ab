/*
 * device/cpu.c — the CPU backend: kernels/cpu plus the bf16 rounding policy.
 *
 * Under bf16 every act output is rounded to bf16 right after the kernel that
 * produced it — the place a bf16 GPU kernel would write it — while reductions
 * inside kernels stay fp32 (as in a GPU kernel's registers) and fp32 buffers
 * (master weights, parameter gradients, moments, rstd, lse, logits) are never
 * rounded. That makes this backend the reference for the mixed-precision logic.
 *
 * Ops are done when they return, so a profile times each on the host's clock.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/status.h"
#include "cpu/kernels.h"
#include "device/device.h"

void openblas_set_num_threads(int n);

#define F(p) ((float *)(p))
#define CF(p) ((const float *)(p))

/* ---- op timing (profile): d->impl holds the sums while one runs ---- */

typedef struct cpu_prof {
    ms_op_table sums;
    double from; /* the window's start */
} cpu_prof;

static double op_begin(const ms_device *d) { return d->impl ? ms_now() : 0; }

static void op_end(ms_device *d, const char *name, double t0) {
    cpu_prof *p = d->impl;
    if (p) ms_op_table_add(&p->sums, ms_op_table_slot(&p->sums, name), ms_now() - t0);
}

/* An op named by its kind and shape (a matmul: rows x in x out). */
static void op_end_shape(ms_device *d, const char *kind, int64_t n, int in, int out, double t0) {
    if (!d->impl) return;
    char name[MS_OP_NAME];
    snprintf(name, sizeof name, "%s %lldx%dx%d", kind, (long long)n, in, out);
    op_end(d, name, t0);
}

static int profile(ms_device *d, int on, ms_op_time *out, int max, double *window) {
    cpu_prof *p = d->impl;
    if (on) {
        if (p) return 0;
        if (!(p = calloc(1, sizeof *p))) {
            ms_fail(MS_ERR_NOMEM, "cpu: no host memory for a profile (%zu bytes)", sizeof *p);
            return -1;
        }
        p->from = ms_now();
        d->impl = p;
        return 0;
    }
    if (!p) return 0;
    if (window) *window = ms_now() - p->from;
    int n = ms_op_table_take(&p->sums, out, max);
    free(p);
    d->impl = NULL;
    return n;
}

/* Round an act output when the policy says bf16. */
static void act_out(ms_device *d, void *p, int64_t n) {
    if (d->bf16) cpu_round_bf16(F(p), n);
}

static int64_t elem_bytes(const ms_device *d, int32_t dtype) {
    (void)d;
    (void)dtype;
    return 4; /* bf16 is emulated in fp32 containers; int32/uint32 are 4 bytes */
}

static ms_status reserve(ms_device *d, int64_t bytes, void **out) {
    (void)d;
    *out = NULL;
    if (bytes == 0) return MS_OK;
    void *p = aligned_alloc(64, (size_t)bytes);
    if (!p) return ms_fail(MS_ERR_NOMEM, "cpu: could not reserve %lld bytes of host memory", (long long)bytes);
    *out = p;
    return MS_OK;
}

static void release(ms_device *d, void *p) { (void)d; free(p); }
static void copy(ms_device *d, void *dst, const void *src, int64_t n) {
    double t0 = op_begin(d);
    memcpy(dst, src, (size_t)n);
    op_end(d, "copy", t0);
}

static void zero(ms_device *d, void *p, int64_t n) {
    double t0 = op_begin(d);
    memset(p, 0, (size_t)n);
    op_end(d, "zero", t0);
}

static void sync(ms_device *d) { (void)d; }

/* Host and "device" are one memory: a copy beside the compute is done when it
 * returns (not an op of the profile: the offload's thread makes them too). */
static int64_t copy_async(ms_device *d, void *dst, const void *src, int64_t n, int how) {
    (void)d, (void)how;
    memcpy(dst, src, (size_t)n);
    return 0;
}
static void ticket_noop(ms_device *d, int64_t ticket) { (void)d, (void)ticket; }

static ms_status start(ms_device *d) {
    int n = d->threads > 0 ? d->threads : omp_get_num_procs();
    d->threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return MS_OK;
}

static void stop(ms_device *d) {
    free(d->impl); /* a profile left running */
    d->impl = NULL;
}

static void embedding_fwd(ms_device *d, void *y, const int32_t *tokens, const void *table, int64_t n, int dim) {
    double t0 = op_begin(d);
    cpu_embedding_fwd(F(y), tokens, CF(table), n, dim);
    /* the table is already bf16-valued: a gather needs no rounding */
    op_end(d, "embedding_fwd", t0);
}

static void embedding_bwd(ms_device *d, float *dtable, const void *dy, const int32_t *tokens, int64_t n, int dim) {
    double t0 = op_begin(d);
    cpu_embedding_bwd(dtable, CF(dy), tokens, n, dim);
    op_end(d, "embedding_bwd", t0);
}

static void matmul_fwd(ms_device *d, void *y, const void *x, const void *w, int64_t n, int in, int out,
                       const void *add) {
    double t0 = op_begin(d);
    if (add && add != y) memcpy(y, add, (size_t)(n * out) * sizeof(float));
    cpu_matmul_fwd(F(y), CF(x), CF(w), n, in, out, add != NULL);
    act_out(d, y, n * out);
    op_end_shape(d, "matmul_fwd", n, in, out, t0);
}

/* The reference kernels add weight gradients; an overwrite zeroes dw first. */
static void fresh(float *dw, int64_t n, int accumulate) {
    if (dw && !accumulate) memset(dw, 0, (size_t)n * sizeof(float));
}

static void matmul_bwd(ms_device *d, void *dx, float *dw, const void *dy, const void *x, const void *w,
                       int64_t n, int in, int out, int acc, int acc_dw) {
    double t0 = op_begin(d);
    fresh(dw, (int64_t)out * in, acc_dw);
    cpu_matmul_bwd(F(dx), dw, CF(dy), CF(x), CF(w), n, in, out, acc);
    if (dx) act_out(d, dx, n * in);
    op_end_shape(d, "matmul_bwd", n, in, out, t0);
}

static void rmsnorm_fwd(ms_device *d, void *y, float *rstd, const void *x, const void *w, int64_t n, int dim, float eps) {
    double t0 = op_begin(d);
    cpu_rmsnorm_fwd(F(y), rstd, CF(x), CF(w), n, dim, eps);
    act_out(d, y, n * dim);
    op_end(d, "rmsnorm_fwd", t0);
}

static void rmsnorm_bwd(ms_device *d, void *dx, float *dw, const void *dy, const void *x, const void *w,
                        const float *rstd, int64_t n, int dim, int acc_dw) {
    double t0 = op_begin(d);
    fresh(dw, dim, acc_dw);
    cpu_rmsnorm_bwd(F(dx), dw, CF(dy), CF(x), CF(w), rstd, n, dim);
    act_out(d, dx, n * dim);
    op_end(d, "rmsnorm_bwd", t0);
}

static void rope_fwd(ms_device *d, void *x, const float *cs, int64_t B, int T, int heads, int hd) {
    double t0 = op_begin(d);
    cpu_rope_fwd(F(x), cs, B, T, heads, hd);
    act_out(d, x, B * T * heads * hd);
    op_end(d, "rope_fwd", t0);
}

static void rope_bwd(ms_device *d, void *dx, const float *cs, int64_t B, int T, int heads, int hd) {
    double t0 = op_begin(d);
    cpu_rope_bwd(F(dx), cs, B, T, heads, hd);
    act_out(d, dx, B * T * heads * hd);
    op_end(d, "rope_bwd", t0);
}

static void attention_fwd(ms_device *d, void *out, float *lse, const void *q, const void *k, const void *v,
                          const int32_t *doc_start, int B, int T, int H, int KV, int hd) {
    double t0 = op_begin(d);
    cpu_attention_fwd(F(out), lse, CF(q), CF(k), CF(v), doc_start, B, T, H, KV, hd);
    act_out(d, out, (int64_t)B * T * H * hd);
    op_end(d, "attention_fwd", t0);
}

static void attention_bwd(ms_device *d, void *dq, void *dk, void *dv, const void *dout, const void *q,
                          const void *k, const void *v, const void *out, const float *lse,
                          const int32_t *doc_start, int B, int T, int H, int KV, int hd) {
    double t0 = op_begin(d);
    cpu_attention_bwd(F(dq), F(dk), F(dv), CF(dout), CF(q), CF(k), CF(v), CF(out), lse, doc_start, B, T, H, KV,
                      hd);
    act_out(d, dq, (int64_t)B * T * H * hd);
    act_out(d, dk, (int64_t)B * T * KV * hd);
    act_out(d, dv, (int64_t)B * T * KV * hd);
    op_end(d, "attention_bwd", t0);
}

static void swiglu_fwd(ms_device *d, void *h, const void *gate, const void *up, int64_t n) {
    double t0 = op_begin(d);
    cpu_swiglu_fwd(F(h), CF(gate), CF(up), n);
    act_out(d, h, n);
    op_end(d, "swiglu_fwd", t0);
}

static void swiglu_bwd(ms_device *d, void *dgate, void *dup, const void *dh, const void *gate, const void *up, int64_t n) {
    double t0 = op_begin(d);
    cpu_swiglu_bwd(F(dgate), F(dup), CF(dh), CF(gate), CF(up), n);
    act_out(d, dgate, n);
    act_out(d, dup, n);
    op_end(d, "swiglu_bwd", t0);
}

static double lmhead_xent(ms_device *d, void *dx, float *dw, float *logits, const void *x, const void *w,
                          const int32_t *targets, int64_t n, int dim, int vocab, int chunk, float grad_scale,
                          int acc_dw) {
    double t0 = op_begin(d);
    if (dx) fresh(dw, (int64_t)vocab * dim, acc_dw);
    double loss = cpu_lmhead_xent(F(dx), dw, logits, CF(x), CF(w), targets, n, dim, vocab, chunk,
                                  grad_scale, d->bf16);
    if (dx) act_out(d, dx, n * dim);
    op_end(d, "lmhead_xent", t0);
    return loss;
}

static void logits(ms_device *d, float *y, const void *x, const void *w, int64_t n, int dim, int vocab) {
    double t0 = op_begin(d);
    cpu_matmul_fwd(y, CF(x), CF(w), n, dim, vocab, 0);
    op_end_shape(d, "logits", n, dim, vocab, t0);
}

static void rope_table(ms_device *d, float *cs, int T, int hd, float theta) {
    cpu_rope_table(cs, T, hd, theta);
    /* a bf16 model reads cos/sin as bf16 (the Hugging Face implementation casts them) */
    if (d->bf16) cpu_round_bf16(cs, (int64_t)T * hd);
}

static double sumsq(ms_device *d, const float *const *x, const int64_t *n, int count) {
    double t0 = op_begin(d);
    double sum = 0;
    for (int i = 0; i < count; i++) sum += cpu_sumsq(x[i], n[i]);
    op_end(d, "sumsq", t0);
    return sum;
}

static void cast(const ms_device *d, void *params, const float *master, int64_t n) {
    if (d->bf16) cpu_copy_round_bf16(F(params), master, n);
    else if (F(params) != master) memcpy(params, master, (size_t)n * sizeof(float));
}

static void cast_params(ms_device *d, void *params, const float *master, int64_t n) {
    double t0 = op_begin(d);
    cast(d, params, master, n);
    op_end(d, "cast_params", t0);
}

static void adamw(ms_device *d, float *param, float *m, float *v, const float *g, int64_t n, float lr,
                  float b1, float b2, float eps, float wd, float scale, int64_t step, void *compute) {
    double t0 = op_begin(d);
    /* the SIMD AdamW: the bits of the scalar cpu_adamw (kernels.h), faster */
    cpu_adam_hp hp = {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps, .weight_decay = wd, .grad_scale = scale,
                      .step = step};
    cpu_adamw_fast(param, m, v, g, 0, NULL, n, &hp, 0);
    /* bf16 here is fp32 storage of rounded values: the compute copy is a second pass */
    if (compute) cast(d, compute, param, n);
    op_end(d, "adamw", t0);
}

static void add(ms_device *d, float *y, const float *x, int64_t n) {
    double t0 = op_begin(d);
    cpu_add(y, x, n);
    op_end(d, "add", t0);
}

void ms_device_init_cpu(ms_device *d, int32_t precision, int32_t threads) {
    *d = (ms_device){
        .name = "cpu", .kind = MS_DEVICE_CPU, .bf16 = precision == MS_PRECISION_BF16, .threads = threads,
        .elem_bytes = elem_bytes, .reserve = reserve, .release = release,
        .host_reserve = reserve, .host_release = release,
        .upload = copy, .download = copy, .copy = copy, .zero = zero, .sync = sync,
        .copy_async = copy_async, .ticket_wait = ticket_noop, .ticket_order = ticket_noop,
        .start = start, .stop = stop,
        .embedding_fwd = embedding_fwd, .embedding_bwd = embedding_bwd,
        .matmul_fwd = matmul_fwd, .matmul_bwd = matmul_bwd,
        .rmsnorm_fwd = rmsnorm_fwd, .rmsnorm_bwd = rmsnorm_bwd,
        .rope_fwd = rope_fwd, .rope_bwd = rope_bwd, .rope_table = rope_table,
        .attention_fwd = attention_fwd, .attention_bwd = attention_bwd,
        .swiglu_fwd = swiglu_fwd, .swiglu_bwd = swiglu_bwd,
        .lmhead_xent = lmhead_xent, .logits = logits,
        .sumsq = sumsq, .adamw = adamw, .cast_params = cast_params, .add = add,
        .profile = profile,
    };
}
