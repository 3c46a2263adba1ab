/*
 * spec/gpu/model.c — a small Llama written only against the backend interface
 * (the schedule of engine/model/llama.c without checkpointing or sharding), so
 * the same code runs a whole training step on the CPU and on the GPU:
 * embedding, per layer RMSNorm, q/k/v, RoPE, causal GQA attention, o (+=
 * residual), RMSNorm, gate/up, SwiGLU, down (+= residual); final RMSNorm, the
 * fused LM head + cross-entropy; the backward of all of it; global-norm
 * clipping at 1.0 and AdamW on the fp32 master; the bf16 cast of the master.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"

enum { W_ANORM, W_Q, W_K, W_V, W_O, W_FNORM, W_G, W_U, W_D, W_N };

struct gmodel {
    ms_device *d;
    gmodel_config c;
    int hd;
    int64_t ab, np, emb, head, fnorm, lw[64][W_N];   /* parameter offsets (elements) */
    void *params, *tokens, *targets, *cs;            /* act, i32, i32, f32 */
    float *master, *grads, *m, *v, *rstdf, *logits;
    void **xs, **xn1, **q, **k, **vv, **att, **mid, **xn2, **gate, **up, **h;
    float **lse, **rstd1, **rstd2;
    void *xnf, *dx, *dxn, *dh, *dgate, *dup, *datt, *dk, *dv, *dxnf;
};

static void *take(gmodel *m, int64_t bytes) {
    void *p = NULL;
    if (m->d->reserve(m->d, bytes, &p) != MS_OK) return NULL;
    return p;
}
#define ACT(m, n) take(m, (int64_t)(n) * (m)->ab)
#define F32(m, n) ((float *)take(m, (int64_t)(n) * 4))
#define PA(m, off) ((char *)(m)->params + (off) * (m)->ab)   /* act view of a parameter */
#define GR(m, off) ((m)->grads + (off))

int64_t gmodel_params(const gmodel *m) { return m->np; }

gmodel *gmodel_new(ms_device *d, const gmodel_config *c, const float *init, unsigned seed) {
    gmodel *m = calloc(1, sizeof *m);
    m->d = d;
    m->c = *c;
    m->hd = c->D / c->H;
    m->ab = ms_act_bytes(d);
    int64_t D = c->D, F = c->F, QD = (int64_t)c->H * m->hd, KD = (int64_t)c->KV * m->hd, N = (int64_t)c->B * c->T;
    int64_t o = 0;
    m->emb = o, o += (int64_t)c->V * D;
    for (int l = 0; l < c->L; l++) {
        int64_t sz[W_N] = {D, QD * D, KD * D, KD * D, D * QD, D, F * D, F * D, D * F};
        for (int w = 0; w < W_N; w++) m->lw[l][w] = o, o += sz[w];
    }
    m->fnorm = o, o += D;
    if (c->tie) m->head = m->emb;
    else m->head = o, o += (int64_t)c->V * D;
    m->np = o;
    m->params = ACT(m, o);
    m->master = d->bf16 ? F32(m, o) : (float *)m->params;
    m->grads = F32(m, o), m->m = F32(m, o), m->v = F32(m, o);
    m->tokens = take(m, N * 4), m->targets = take(m, N * 4), m->cs = F32(m, (int64_t)c->T * m->hd);
    int L = c->L;
    void ***lists[] = {&m->xn1, &m->q, &m->k, &m->vv, &m->att, &m->mid, &m->xn2, &m->gate, &m->up, &m->h};
    int64_t sizes[] = {N * D, N * QD, N * KD, N * KD, N * QD, N * D, N * D, N * F, N * F, N * F};
    for (int i = 0; i < 10; i++) {
        *lists[i] = calloc((size_t)L, sizeof(void *));
        for (int l = 0; l < L; l++) (*lists[i])[l] = ACT(m, sizes[i]);
    }
    m->xs = calloc((size_t)L + 1, sizeof(void *));
    for (int l = 0; l <= L; l++) m->xs[l] = ACT(m, N * D);
    m->lse = calloc((size_t)L, sizeof(float *)), m->rstd1 = calloc((size_t)L, sizeof(float *)),
    m->rstd2 = calloc((size_t)L, sizeof(float *));
    for (int l = 0; l < L; l++)
        m->lse[l] = F32(m, (int64_t)c->B * c->H * c->T), m->rstd1[l] = F32(m, N), m->rstd2[l] = F32(m, N);
    m->rstdf = F32(m, N), m->logits = F32(m, (int64_t)c->chunk * c->V);
    m->xnf = ACT(m, N * D), m->dx = ACT(m, N * D), m->dxn = ACT(m, N * D), m->dxnf = ACT(m, N * D);
    m->dh = ACT(m, N * F), m->dgate = ACT(m, N * F), m->dup = ACT(m, N * F);
    m->datt = ACT(m, N * QD), m->dk = ACT(m, N * KD), m->dv = ACT(m, N * KD);
    /* the backend's own scratch, for this batch, as the engine's plan gives it */
    if (gpu_scratch(d, (ms_device_shape){.rows = N, .B = c->B, .T = c->T, .heads = c->H, .head_dim = c->D / c->H, .dim = c->D})) {
        free(m);
        return NULL;
    }

    /* init: N(0, 0.02)-like uniform weights, norms at 1 */
    float *h = malloc(sizeof(float) * (size_t)o);
    if (init) memcpy(h, init, sizeof(float) * (size_t)o);
    else {
        fill_random(h, o, seed, 0.035f);
        for (int l = 0; l < c->L; l++)
            for (int64_t j = 0; j < D; j++) h[m->lw[l][W_ANORM] + j] = h[m->lw[l][W_FNORM] + j] = 1.0f;
        for (int64_t j = 0; j < D; j++) h[m->fnorm + j] = 1.0f;
    }
    d->upload(d, m->master, h, o * 4);
    d->sync(d);
    free(h);
    d->cast_params(d, m->params, m->master, o);
    d->zero(d, m->m, o * 4);
    d->zero(d, m->v, o * 4);
    d->rope_table(d, m->cs, c->T, m->hd, c->theta);
    return m;
}

void gmodel_set_batch(gmodel *m, const int32_t *tokens, const int32_t *targets) {
    int64_t N = (int64_t)m->c.B * m->c.T;
    m->d->upload(m->d, m->tokens, tokens, N * 4);
    m->d->upload(m->d, m->targets, targets, N * 4);
    m->d->sync(m->d);
}

static double forward_backward(gmodel *m, float grad_scale) {
    ms_device *d = m->d;
    const gmodel_config *c = &m->c;
    int B = c->B, T = c->T, H = c->H, KV = c->KV, hd = m->hd, D = c->D, F = c->F;
    int QD = H * hd, KD = KV * hd;
    int64_t N = (int64_t)B * T;
    d->embedding_fwd(d, m->xs[0], m->tokens, PA(m, m->emb), N, D);
    for (int l = 0; l < c->L; l++) {
        int64_t *w = m->lw[l];
        d->rmsnorm_fwd(d, m->xn1[l], m->rstd1[l], m->xs[l], PA(m, w[W_ANORM]), N, D, c->eps);
        d->matmul_fwd(d, m->q[l], m->xn1[l], PA(m, w[W_Q]), N, D, QD, NULL);
        d->matmul_fwd(d, m->k[l], m->xn1[l], PA(m, w[W_K]), N, D, KD, NULL);
        d->matmul_fwd(d, m->vv[l], m->xn1[l], PA(m, w[W_V]), N, D, KD, NULL);
        d->rope_fwd(d, m->q[l], m->cs, B, T, H, hd);
        d->rope_fwd(d, m->k[l], m->cs, B, T, KV, hd);
        d->attention_fwd(d, m->att[l], m->lse[l], m->q[l], m->k[l], m->vv[l], NULL, B, T, H, KV, hd);
        d->matmul_fwd(d, m->mid[l], m->att[l], PA(m, w[W_O]), N, QD, D, m->xs[l]);
        d->rmsnorm_fwd(d, m->xn2[l], m->rstd2[l], m->mid[l], PA(m, w[W_FNORM]), N, D, c->eps);
        d->matmul_fwd(d, m->gate[l], m->xn2[l], PA(m, w[W_G]), N, D, F, NULL);
        d->matmul_fwd(d, m->up[l], m->xn2[l], PA(m, w[W_U]), N, D, F, NULL);
        d->swiglu_fwd(d, m->h[l], m->gate[l], m->up[l], N * F);
        d->matmul_fwd(d, m->xs[l + 1], m->h[l], PA(m, w[W_D]), N, F, D, m->mid[l]);
    }
    d->rmsnorm_fwd(d, m->xnf, m->rstdf, m->xs[c->L], PA(m, m->fnorm), N, D, c->eps);
    double loss = d->lmhead_xent(d, m->dxnf, GR(m, m->head), m->logits, m->xnf, PA(m, m->head), m->targets, N, D,
                                 c->V, c->chunk, grad_scale, 1);
    d->zero(d, m->dx, N * D * m->ab);
    d->rmsnorm_bwd(d, m->dx, GR(m, m->fnorm), m->dxnf, m->xs[c->L], PA(m, m->fnorm), m->rstdf, N, D, 1);
    for (int l = c->L - 1; l >= 0; l--) {
        int64_t *w = m->lw[l];
        d->matmul_bwd(d, m->dh, GR(m, w[W_D]), m->dx, m->h[l], PA(m, w[W_D]), N, F, D, 0, 1);
        d->swiglu_bwd(d, m->dgate, m->dup, m->dh, m->gate[l], m->up[l], N * F);
        d->matmul_bwd(d, m->dxn, GR(m, w[W_G]), m->dgate, m->xn2[l], PA(m, w[W_G]), N, D, F, 0, 1);
        d->matmul_bwd(d, m->dxn, GR(m, w[W_U]), m->dup, m->xn2[l], PA(m, w[W_U]), N, D, F, 1, 1);
        d->rmsnorm_bwd(d, m->dx, GR(m, w[W_FNORM]), m->dxn, m->mid[l], PA(m, w[W_FNORM]), m->rstd2[l], N, D, 1);
        d->matmul_bwd(d, m->datt, GR(m, w[W_O]), m->dx, m->att[l], PA(m, w[W_O]), N, QD, D, 0, 1);
        /* datt's buffer is reused for dq */
        d->attention_bwd(d, m->dh, m->dk, m->dv, m->datt, m->q[l], m->k[l], m->vv[l], m->att[l], m->lse[l], NULL,
                         B, T, H, KV, hd);
        d->rope_bwd(d, m->dh, m->cs, B, T, H, hd);
        d->rope_bwd(d, m->dk, m->cs, B, T, KV, hd);
        d->matmul_bwd(d, m->dxn, GR(m, w[W_Q]), m->dh, m->xn1[l], PA(m, w[W_Q]), N, D, QD, 0, 1);
        d->matmul_bwd(d, m->dxn, GR(m, w[W_K]), m->dk, m->xn1[l], PA(m, w[W_K]), N, D, KD, 1, 1);
        d->matmul_bwd(d, m->dxn, GR(m, w[W_V]), m->dv, m->xn1[l], PA(m, w[W_V]), N, D, KD, 1, 1);
        d->rmsnorm_bwd(d, m->dx, GR(m, w[W_ANORM]), m->dxn, m->xs[l], PA(m, w[W_ANORM]), m->rstd1[l], N, D, 1);
    }
    d->embedding_bwd(d, GR(m, m->emb), m->dx, m->tokens, N, D);
    return loss;
}

double gmodel_step(gmodel *m, float lr, int64_t step) {
    ms_device *d = m->d;
    int64_t N = (int64_t)m->c.B * m->c.T;
    d->zero(d, m->grads, m->np * 4);
    double loss = forward_backward(m, 1.0f / (float)N);
    const float *g = m->grads;
    double norm = sqrt(d->sumsq(d, &g, &m->np, 1));
    float clip = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
    d->adamw(d, m->master, m->m, m->v, m->grads, m->np, lr, 0.9f, 0.95f, 1e-8f, 0.1f, clip, step, m->params);
    d->sync(d);
    return loss / (double)N;
}

void gmodel_master(gmodel *m, float *out) {
    m->d->download(m->d, out, m->master, m->np * 4);
    m->d->sync(m->d);
}

void gmodel_free(gmodel *m) { free(m); /* device memory goes with the device */ }
