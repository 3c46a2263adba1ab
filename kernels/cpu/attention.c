/*
 * kernels/cpu/attention.c — causal grouped-query attention, the flash way.
 *
 * Forward, per query row t: one pass over keys s <= t, TILE keys at a time,
 * with an online softmax (running max m, running sum l, output rescaled when a
 * tile raises m); it keeps only lse_t = m + log(l). Scores are q.k / sqrt(hd).
 * Query head h reads kv head h / (H / KV); H must be a multiple of KV.
 * Backward recomputes p_ts = exp(score_ts - lse_t), TILE keys at a time, with
 * D_t = dout_t . out_t:
 *   dv_s += p dout_t,  ds = p (dout_t . v_s - D_t),
 *   dq_t += ds k_s / sqrt(hd),  dk_s += ds q_t / sqrt(hd).
 * It runs in parallel over (b, kv head): one task owns its kv head's dk/dv and
 * its group's dq, so there are no races and the sums are deterministic; with
 * B * KV below the thread count some threads idle. Work is O(T^2 hd) per head,
 * memory O(1) beyond the outputs.
 * Document masking: with doc_start (B, T) given, row t of sequence b attends to
 * keys doc_start[b, t] <= s <= t only (packed documents do not see each other);
 * NULL is plain causal (every row starts at key 0).
 */
#include "cpu/kernels.h"
#include <math.h>
#include <string.h>

static inline float dot(const float *a, const float *b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline void axpy(float *y, float a, const float *x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

#define TILE 32  /* keys per step: scores held on the stack */

/* One query row: o = softmax over s0 <= s <= t of (q.k_s * scale) applied to v_s. */
static float attend_row(float *o,         /* (hd) = */
                        const float *q,   /* (hd) */
                        const float *k,   /* (t+1 rows, stride kv_stride) */
                        const float *v,   /* (t+1 rows, stride kv_stride) */
                        int first, int t, int64_t kv_stride, int hd, float scale) {
    float m = -INFINITY, l = 0.0f, sc[TILE];
    memset(o, 0, sizeof(float) * hd);
    for (int s0 = first; s0 <= t; s0 += TILE) {
        int n = t + 1 - s0 < TILE ? t + 1 - s0 : TILE;
        float tm = m;
        for (int j = 0; j < n; j++) {
            sc[j] = dot(q, k + (s0 + j) * kv_stride, hd) * scale;
            tm = sc[j] > tm ? sc[j] : tm;
        }
        if (tm > m) {
            float corr = expf(m - tm);
            l *= corr;
            for (int i = 0; i < hd; i++) o[i] *= corr;
            m = tm;
        }
        for (int j = 0; j < n; j++) {
            float p = expf(sc[j] - m);
            l += p;
            axpy(o, p, v + (s0 + j) * kv_stride, hd);
        }
    }
    for (int i = 0; i < hd; i++) o[i] /= l;
    return m + logf(l);
}

void cpu_attention_fwd(float *out,        /* (B, T, H, hd) = */
                       float *lse,        /* (B, H, T) = */
                       const float *q,    /* (B, T, H, hd) */
                       const float *k,    /* (B, T, KV, hd) */
                       const float *v,    /* (B, T, KV, hd) */
                       const int32_t *doc_start, /* (B, T) or NULL */
                       int B, int T, int H, int KV, int hd) {
    float scale = 1.0f / sqrtf((float)hd);
    int group = H / KV;
    int64_t rows = (int64_t)B * T * H, kv_stride = (int64_t)KV * hd;
#pragma omp parallel for schedule(dynamic, 8)
    for (int64_t r = 0; r < rows; r++) {  /* r = (b, t, h) */
        int h = (int)(r % H), t = (int)(r / H % T);
        int64_t b = r / H / T;
        int64_t kv0 = b * T * kv_stride + (int64_t)(h / group) * hd;
        int first = doc_start ? doc_start[b * T + t] : 0;
        lse[(b * H + h) * T + t] =
            attend_row(out + r * hd, q + r * hd, k + kv0, v + kv0, first, t, kv_stride, hd, scale);
    }
}

/* Backward of one query row t of head h against its kv head (see the banner). */
static void attend_row_bwd(float *dq,           /* (hd) += */
                           float *dk, float *dv, /* (t+1 rows, stride kv_stride) += */
                           const float *dout, const float *q, const float *out, /* (hd) */
                           const float *k, const float *v, /* (t+1 rows, stride kv_stride) */
                           float lse, int first, int t, int64_t kv_stride, int hd, float scale) {
    float D = dot(dout, out, hd), p[TILE], ds[TILE];
    for (int s0 = first; s0 <= t; s0 += TILE) {
        int n = t + 1 - s0 < TILE ? t + 1 - s0 : TILE;
        const float *ks = k + s0 * kv_stride, *vs = v + s0 * kv_stride;
        for (int j = 0; j < n; j++) {
            p[j] = expf(dot(q, ks + j * kv_stride, hd) * scale - lse);
            ds[j] = p[j] * (dot(dout, vs + j * kv_stride, hd) - D) * scale;
        }
        for (int j = 0; j < n; j++) {
            int64_t o = (s0 + j) * kv_stride;
            axpy(dq, ds[j], k + o, hd);
            axpy(dk + o, ds[j], q, hd);
            axpy(dv + o, p[j], dout, hd);
        }
    }
}

void cpu_attention_bwd(float *dq,         /* (B, T, H, hd) = */
                       float *dk,         /* (B, T, KV, hd) = */
                       float *dv,         /* (B, T, KV, hd) = */
                       const float *dout, /* (B, T, H, hd) */
                       const float *q,    /* (B, T, H, hd) */
                       const float *k,    /* (B, T, KV, hd) */
                       const float *v,    /* (B, T, KV, hd) */
                       const float *out,  /* (B, T, H, hd) */
                       const float *lse,  /* (B, H, T) */
                       const int32_t *doc_start, /* (B, T) or NULL */
                       int B, int T, int H, int KV, int hd) {
    float scale = 1.0f / sqrtf((float)hd);
    int group = H / KV;
    int64_t q_stride = (int64_t)H * hd, kv_stride = (int64_t)KV * hd;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t task = 0; task < (int64_t)B * KV; task++) {  /* task = (b, g) */
        int64_t b = task / KV;
        int g = (int)(task % KV);
        int64_t kv0 = b * T * kv_stride + (int64_t)g * hd;
        for (int t = 0; t < T; t++) {
            memset(dk + kv0 + t * kv_stride, 0, sizeof(float) * hd);
            memset(dv + kv0 + t * kv_stride, 0, sizeof(float) * hd);
        }
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int t = 0; t < T; t++) {
                int64_t r = (b * T + t) * q_stride + (int64_t)h * hd;
                memset(dq + r, 0, sizeof(float) * hd);
                attend_row_bwd(dq + r, dk + kv0, dv + kv0, dout + r, q + r, out + r,
                               k + kv0, v + kv0, lse[(b * H + h) * T + t],
                               doc_start ? doc_start[b * T + t] : 0, t, kv_stride, hd, scale);
            }
    }
}
