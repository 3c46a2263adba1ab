/*
 * spec/c/kernels_attention_test.c — causal GQA attention against a naive
 * double reference (full T x T softmax with the causal mask, query head h on
 * kv head h / (H / KV)); backward against finite differences of
 * L = sum(r * out) (see kernels_fd.h). GQA (H = 2 KV), MHA (H = KV), MQA (KV = 1),
 * and a sequence longer than the kernel's key tile (32). With document masking
 * the reference keeps, for row t, only keys from the start of t's document
 * (documents packed back to back, different cuts per sequence, one crossing a
 * key tile) — and masked rows must differ from plain causal ones.
 */
#include "check.h"
#include "cpu/kernels.h"
#include "kernels_fd.h"

typedef struct { double *q, *k, *v, *r, *out; const int32_t *doc_start; int B, T, H, KV, hd; } attn_ctx;

/* One query row: scores over s <= t, softmax, weighted sum; returns the lse. */
static double ref_attend(double *o, const attn_ctx *c, int b, int t, int h) {
    int kvh = h / (c->H / c->KV);
    double sc[128], m = -INFINITY, sum = 0.0;
    const double *q = c->q + (((long)b * c->T + t) * c->H + h) * c->hd;
    int first = c->doc_start ? c->doc_start[b * c->T + t] : 0;
    for (int s = 0; s < first; s++) sc[s] = -INFINITY; /* another document: masked */
    for (int s = first; s <= t; s++) {
        const double *k = c->k + (((long)b * c->T + s) * c->KV + kvh) * c->hd;
        sc[s] = kt_dot(q, k, c->hd) / sqrt((double)c->hd);
        m = fmax(m, sc[s]);
    }
    for (int s = 0; s <= t; s++) sum += exp(sc[s] - m);
    for (int i = 0; i < c->hd; i++) o[i] = 0.0;
    for (int s = 0; s <= t; s++) {
        const double *v = c->v + (((long)b * c->T + s) * c->KV + kvh) * c->hd;
        for (int i = 0; i < c->hd; i++) o[i] += exp(sc[s] - m) / sum * v[i];
    }
    return m + log(sum);
}

static void ref_attention(attn_ctx *c, double *lse /* (B, H, T) or NULL */) {
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int h = 0; h < c->H; h++) {
                double l = ref_attend(c->out + (((long)b * c->T + t) * c->H + h) * c->hd, c, b, t, h);
                if (lse) lse[((long)b * c->H + h) * c->T + t] = l;
            }
}

static double attn_loss(void *p) {
    attn_ctx *c = p;
    ref_attention(c, NULL);
    return kt_dot(c->r, c->out, (long)c->B * c->T * c->H * c->hd);
}

static int attention_case_docs(int B, int T, int H, int KV, int hd, unsigned seed, const int32_t *doc_start) {
    attn_ctx c = {.B = B, .T = T, .H = H, .KV = KV, .hd = hd, .doc_start = doc_start};
    CHECK(T <= 128);  /* ref_attend keeps one row of scores on the stack */
    long nq = (long)B * T * H * hd, nkv = (long)B * T * KV * hd, nl = (long)B * H * T;
    float *q = kt_rand(nq, seed, 1.5f), *k = kt_rand(nkv, seed + 1, 1.5f);
    float *v = kt_rand(nkv, seed + 2, 1.0f), *dout = kt_rand(nq, seed + 3, 1.0f);
    c.q = kt_to_double(q, nq), c.k = kt_to_double(k, nkv), c.v = kt_to_double(v, nkv);
    c.r = kt_to_double(dout, nq), c.out = kt_zeros(nq);

    float *out = kt_fill(nq, NAN), *lse = kt_fill(nl, NAN);
    cpu_attention_fwd(out, lse, q, k, v, doc_start, B, T, H, KV, hd);
    double *want_lse = kt_zeros(nl);
    ref_attention(&c, want_lse);
    CHECK_ARRAYS("out", out, c.out, nq, KT_FWD_ATOL, KT_FWD_RTOL);
    CHECK_ARRAYS("lse", lse, want_lse, nl, KT_FWD_ATOL, KT_FWD_RTOL);

    double *gq = kt_zeros(nq), *gk = kt_zeros(nkv), *gv = kt_zeros(nkv);
    kt_fd_grad(gq, c.q, nq, attn_loss, &c);
    kt_fd_grad(gk, c.k, nkv, attn_loss, &c);
    kt_fd_grad(gv, c.v, nkv, attn_loss, &c);
    float *dq = kt_fill(nq, 123.0f), *dk = kt_fill(nkv, 123.0f), *dv = kt_fill(nkv, 123.0f);
    cpu_attention_bwd(dq, dk, dv, dout, q, k, v, out, lse, doc_start, B, T, H, KV, hd);
    CHECK_ARRAYS("dq", dq, gq, nq, KT_GRAD_ATOL, KT_GRAD_RTOL);
    CHECK_ARRAYS("dk", dk, gk, nkv, KT_GRAD_ATOL, KT_GRAD_RTOL);
    CHECK_ARRAYS("dv", dv, gv, nkv, KT_GRAD_ATOL, KT_GRAD_RTOL);
    if (doc_start) { /* the mask must matter: a row past a document start differs from plain causal */
        float *plain = kt_fill(nq, NAN), *plain_lse = kt_fill(nl, NAN);
        cpu_attention_fwd(plain, plain_lse, q, k, v, NULL, B, T, H, KV, hd);
        long differ = 0;
        for (long i = 0; i < nl; i++) differ += plain_lse[i] != lse[i];
        CHECK(differ > 0);
    }
    return 0;
}

static int attention_case(int B, int T, int H, int KV, int hd, unsigned seed) {
    return attention_case_docs(B, T, H, KV, hd, seed, NULL);
}

/* doc_start from the BOS positions, as the loader computes it */
static int32_t *doc_starts(const int32_t *bos_at, int B, int T) {
    int32_t *ds = malloc(sizeof *ds * (size_t)B * (size_t)T);
    for (int b = 0; b < B; b++) {
        int start = 0;
        for (int t = 0; t < T; t++) {
            if (bos_at[b * T + t]) start = t;
            ds[b * T + t] = start;
        }
    }
    return ds;
}

TEST(kernel_attention_gqa) { return attention_case(2, 5, 4, 2, 8, 100); }
TEST(kernel_attention_mha) { return attention_case(2, 6, 3, 3, 8, 110); }
TEST(kernel_attention_mqa) { return attention_case(1, 7, 4, 1, 4, 120); }
TEST(kernel_attention_long) { return attention_case(1, 70, 2, 1, 4, 130); }  /* 3 key tiles */

/* Documents packed into sequences: sequence 0 has documents at 0, 3 and 7; sequence 1
 * a single one from 0 and a new one at 1 (a one-token document first). */
TEST(kernel_attention_doc_mask_gqa) {
    int32_t bos[2 * 10] = {0};
    bos[0] = bos[3] = bos[7] = 1;
    bos[10 + 1] = 1;
    return attention_case_docs(2, 10, 4, 2, 8, 140, doc_starts(bos, 2, 10));
}
TEST(kernel_attention_doc_mask_long) {  /* a document starting inside the second key tile */
    int32_t bos[70] = {0};
    bos[0] = bos[20] = bos[45] = bos[69] = 1;
    return attention_case_docs(1, 70, 2, 1, 4, 150, doc_starts(bos, 1, 70));
}
