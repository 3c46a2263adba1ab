/*
 * kernels/cpu/adamw_simd.c — the host optimizer's fast kernels: AdamW over fp32
 * master weights and moments with fp32 or bf16 gradients, optionally writing
 * the updated weights as bf16 in the same pass; sums of squares of fp32 and
 * bf16 arrays for the global gradient norm.
 *
 * One body per op (a macro, so the paths cannot drift apart), written on GCC
 * generic vectors of the ISA's width and compiled three times: AVX-512F (16
 * floats), AVX2+FMA (8) and the x86-64-v2 baseline (4). The widest the CPU
 * supports is chosen at the first call (__builtin_cpu_supports);
 * cpu_isa_force overrides it for specs and benches.
 *
 * AdamW does the reference's (adamw.c) operations in the reference's order;
 * add, mul, div and sqrt are correctly rounded on every path and nothing is
 * contracted into an FMA (C11 mode is -ffp-contract=off; the specs would see
 * it), so every path gives the reference's bits. The last n % W elements take
 * the scalar form. bf16 output is cast.c's rounding, bit for bit, written with
 * non-temporal stores when the output is aligned for them.
 *
 * Sum of squares: each part of a partition fixed by n alone keeps 16 double
 * lanes (lane k takes the elements k, k+16, ... in order; 2, 4 or 8 vectors
 * by ISA), sums them in lane order, and the parts are summed in order: the
 * same bits on any ISA and any thread count. x*x of an fp32 is exact in double.
 *
 * Threads: AdamW hands out CHUNK-element pieces a few at a time (dynamic
 * schedule): the offload's updates share the host with the thread driving the
 * GPU, and under a static split the thread on its busy core would hold up the
 * whole team. Works from any pthread: libgomp gives each calling thread its
 * own team. Bandwidth bound: 28 bytes a parameter with fp32 gradients (read p
 * m v g, write p m v), also 28 with bf16 in and out. Outputs are stored
 * non-temporally where aligned: an update out of place (cpu_adamw_fast_from
 * into other arrays) would otherwise read every output line before writing
 * it, 12 bytes a parameter more. kernels/bench/NOTES.md.
 */
#include "cpu/kernels.h"
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define CHUNK 16384        /* elements per OpenMP work item; a multiple of 16 */
#define SUM_PARTS 256      /* at most this many parts in a sum of squares */
#define SUM_MIN_PART 16384 /* and none smaller (unless n is) */

/* ---- dispatch ------------------------------------------------------------ */

static int isa_now = -1; /* cpu_isa; -1 until the first call */

cpu_isa cpu_isa_best(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return CPU_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CPU_ISA_AVX2;
    return CPU_ISA_BASE;
}

cpu_isa cpu_isa_active(void) {
    int i = __atomic_load_n(&isa_now, __ATOMIC_RELAXED);
    if (i < 0) {
        i = (int)cpu_isa_best();
        __atomic_store_n(&isa_now, i, __ATOMIC_RELAXED);
    }
    return (cpu_isa)i;
}

int cpu_isa_force(cpu_isa isa) {
    if ((int)isa < CPU_ISA_BASE || isa > cpu_isa_best()) return -1;
    __atomic_store_n(&isa_now, (int)isa, __ATOMIC_RELAXED);
    return 0;
}

const char *cpu_isa_name(cpu_isa isa) {
    switch (isa) {
    case CPU_ISA_AVX512: return "avx512";
    case CPU_ISA_AVX2: return "avx2";
    default: return "x86-64-v2";
    }
}

static int team(int threads) { return threads > 0 ? threads : omp_get_max_threads(); }

/* ---- AdamW --------------------------------------------------------------- */

typedef struct {
    const float *p0, *m0, *v0; /* (n) master weights and moments before the step */
    float *p, *m, *v;      /* (n) after it (the same arrays: in place) */
    const float *g32;      /* (n) fp32 gradients, or NULL */
    const uint16_t *g16;   /* (n) bf16 gradients, or NULL */
    uint16_t *out;         /* (n) bf16 of the updated weights, or NULL */
    int stream;            /* out is aligned for the ISA's non-temporal stores */
    int stream_state;      /* p, m, v are other arrays than p0, m0, v0, aligned for them */
    float gs, b1, omb1, b2, omb2, eps, decay, step_size, bc2;
} job;

static uint16_t bf16_bits(float x) {
    float r = cpu_bf16_round(x);
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return (uint16_t)(u >> 16);
}

static float bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* element i, exactly as cpu_adamw writes it */
static void one(const job *j, int64_t i) {
    float g = (j->g16 ? bf16_value(j->g16[i]) : j->g32[i]) * j->gs;
    float m = j->b1 * j->m0[i] + j->omb1 * g;
    float v = j->b2 * j->v0[i] + j->omb2 * g * g;
    float p = j->p0[i] * j->decay - j->step_size * m / (sqrtf(v) / j->bc2 + j->eps);
    j->m[i] = m;
    j->v[i] = v;
    j->p[i] = p;
    if (j->out) j->out[i] = bf16_bits(p);
}

/* The loop of one ISA over elements [lo, hi): W floats a vector, SQRT its
 * square root, STREAM a non-temporal store of W bf16 and STREAMF of W floats
 * (an output not read again here: streaming it skips the read-for-ownership
 * of its lines; used where the output is aligned for it). One macro, so the
 * three paths cannot drift apart. */
#define ADAMW_LOOP(W, SQRT, STREAM, STREAMF)                                                         \
    typedef float vf __attribute__((vector_size(4 * (W))));                                   \
    typedef uint32_t vu __attribute__((vector_size(4 * (W))));                                \
    typedef int32_t vi __attribute__((vector_size(4 * (W))));                                 \
    typedef uint16_t vh __attribute__((vector_size(2 * (W))));                                \
    const float gs = j->gs, b1 = j->b1, omb1 = j->omb1, b2 = j->b2, omb2 = j->omb2,            \
                eps = j->eps, decay = j->decay, step_size = j->step_size, bc2 = j->bc2;        \
    const float *pp0 = j->p0, *pm0 = j->m0, *pv0 = j->v0;                                      \
    float *pp = j->p, *pm = j->m, *pv = j->v;                                                  \
    const float *g32 = j->g32;                                                                 \
    const uint16_t *g16 = j->g16;                                                              \
    uint16_t *out = j->out;                                                                    \
    int64_t i = lo;                                                                            \
    for (; i + (W) <= hi; i += (W)) {                                                          \
        vf g, m, v, p;                                                                         \
        if (g16) {                                                                             \
            vh h;                                                                              \
            memcpy(&h, g16 + i, sizeof h);                                                     \
            g = (vf)(__builtin_convertvector(h, vu) << 16);                                    \
        } else {                                                                               \
            memcpy(&g, g32 + i, sizeof g);                                                     \
        }                                                                                      \
        memcpy(&m, pm0 + i, sizeof m);                                                         \
        memcpy(&v, pv0 + i, sizeof v);                                                         \
        memcpy(&p, pp0 + i, sizeof p);                                                         \
        g = g * gs;                                                                            \
        m = b1 * m + omb1 * g;                                                                 \
        v = b2 * v + omb2 * g * g;                                                             \
        p = p * decay - step_size * m / ((vf)SQRT(v) / bc2 + eps);                             \
        if (j->stream_state) {                                                                 \
            STREAMF(pm + i, m);                                                                \
            STREAMF(pv + i, v);                                                                \
            STREAMF(pp + i, p);                                                                \
        } else {                                                                               \
            memcpy(pm + i, &m, sizeof m);                                                      \
            memcpy(pv + i, &v, sizeof v);                                                      \
            memcpy(pp + i, &p, sizeof p);                                                      \
        }                                                                                      \
        if (out) { /* cast.c's rounding: NaN quieted, else nearest even */                     \
            vu u = (vu)p;                                                                      \
            vu nan = (vu)((vi)(0x7F800000u - (u & 0x7FFFFFFFu)) >> 31); /* all ones: NaN */    \
            vu rne = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;                                   \
            vu quiet = (u | 0x00400000u) >> 16;                                                \
            vh o = __builtin_convertvector((nan & quiet) | (~nan & rne), vh);                  \
            if (j->stream) STREAM(out + i, o);                                                 \
            else memcpy(out + i, &o, sizeof o);                                                \
        }                                                                                      \
    }                                                                                          \
    for (; i < hi; i++) one(j, i);                                                             \
    if (j->stream || j->stream_state) _mm_sfence()

#define STREAM32(to, x) _mm256_stream_si256((__m256i *)(to), (__m256i)(x))
#define STREAM16(to, x) _mm_stream_si128((__m128i *)(to), (__m128i)(x))
#define STREAM8(to, x) _mm_stream_si64((long long *)(to), (long long)(x))

#define STREAMF64(to, x) _mm512_stream_ps((to), (__m512)(x))
#define STREAMF32(to, x) _mm256_stream_ps((to), (__m256)(x))
#define STREAMF16(to, x) _mm_stream_ps((to), (__m128)(x))

__attribute__((target("avx512f"))) static void adamw_avx512(const job *j, int64_t lo, int64_t hi) {
    ADAMW_LOOP(16, _mm512_sqrt_ps, STREAM32, STREAMF64);
}
__attribute__((target("avx2,fma"))) static void adamw_avx2(const job *j, int64_t lo, int64_t hi) {
    ADAMW_LOOP(8, _mm256_sqrt_ps, STREAM16, STREAMF32);
}
static void adamw_base(const job *j, int64_t lo, int64_t hi) { ADAMW_LOOP(4, _mm_sqrt_ps, STREAM8, STREAMF16); }

void cpu_adamw_fast(float *param, float *m, float *v, const void *grad, int grad_bf16,
                    uint16_t *param_bf16, int64_t n, const cpu_adam_hp *hp, int threads) {
    cpu_adamw_fast_from(param, m, v, param, m, v, grad, grad_bf16, param_bf16, n, hp, threads);
}

void cpu_adamw_fast_from(const float *param0, const float *m0, const float *v0, float *param, float *m, float *v,
                         const void *grad, int grad_bf16, uint16_t *param_bf16, int64_t n, const cpu_adam_hp *hp,
                         int threads) {
    job j = {
        .p0 = param0, .m0 = m0, .v0 = v0, .p = param, .m = m, .v = v, .out = param_bf16,
        .g32 = grad_bf16 ? NULL : (const float *)grad,
        .g16 = grad_bf16 ? (const uint16_t *)grad : NULL,
        .gs = hp->grad_scale, .b1 = hp->beta1, .omb1 = 1.0f - hp->beta1,
        .b2 = hp->beta2, .omb2 = 1.0f - hp->beta2, .eps = hp->eps,
        .decay = 1.0f - hp->lr * hp->weight_decay,
        .step_size = (float)(hp->lr / (1.0 - pow(hp->beta1, (double)hp->step))),
        .bc2 = (float)sqrt(1.0 - pow(hp->beta2, (double)hp->step)),
    };
    cpu_isa isa = cpu_isa_active();
    int width = isa == CPU_ISA_AVX512 ? 32 : isa == CPU_ISA_AVX2 ? 16 : 8; /* bytes of bf16 a store */
    j.stream = param_bf16 && (uintptr_t)param_bf16 % width == 0;
    j.stream_state = param != param0 && m != m0 && v != v0 && ((uintptr_t)param | (uintptr_t)m | (uintptr_t)v) % (2 * width) == 0;
    void (*run)(const job *, int64_t, int64_t) =
        isa == CPU_ISA_AVX512 ? adamw_avx512 : isa == CPU_ISA_AVX2 ? adamw_avx2 : adamw_base;
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    int t = team(threads);
    if (chunks <= 1 || t == 1) { /* no OpenMP region: even a serial one allocates in libgomp */
        run(&j, 0, n);
        return;
    }
#pragma omp parallel for num_threads(t) schedule(dynamic, 4)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        run(&j, lo, hi);
    }
}

/* ---- sum of squares ------------------------------------------------------ */

/* One part [lo, hi) of a sum of squares, lo a multiple of 16: 16 double lanes
 * held as 16 / WD vectors of WD doubles (the ISA's width); lane k takes the
 * elements lo + k, lo + k + 16, ... in order, the tail included. */
#define SUMSQ_PART(WD)                                                                         \
    typedef float vf __attribute__((vector_size(4 * (WD))));                                  \
    typedef uint32_t vu __attribute__((vector_size(4 * (WD))));                               \
    typedef uint16_t vh __attribute__((vector_size(2 * (WD))));                               \
    typedef double vd __attribute__((vector_size(8 * (WD))));                                 \
    vd acc[16 / (WD)];                                                                         \
    memset(acc, 0, sizeof acc);                                                                \
    int64_t i = lo;                                                                            \
    for (; i + 16 <= hi; i += 16) {                                                            \
        _Pragma("GCC unroll 8") for (int q = 0; q < 16 / (WD); q++) {                          \
            vf f;                                                                              \
            if (x16) {                                                                         \
                vh h;                                                                          \
                memcpy(&h, x16 + i + q * (WD), sizeof h);                                      \
                f = (vf)(__builtin_convertvector(h, vu) << 16);                                \
            } else {                                                                           \
                memcpy(&f, x32 + i + q * (WD), sizeof f);                                      \
            }                                                                                  \
            vd d = __builtin_convertvector(f, vd);                                             \
            acc[q] += d * d;                                                                   \
        }                                                                                      \
    }                                                                                          \
    double lane[16];                                                                           \
    memcpy(lane, acc, sizeof lane);                                                            \
    for (int k = 0; i < hi; i++, k++) {                                                        \
        double d = x16 ? (double)bf16_value(x16[i]) : (double)x32[i];                          \
        lane[k] += d * d;                                                                      \
    }                                                                                          \
    double s = 0.0;                                                                            \
    for (int k = 0; k < 16; k++) s += lane[k];                                                 \
    return s

__attribute__((target("avx512f"))) static double sumsq_avx512(const float *x32, const uint16_t *x16,
                                                                int64_t lo, int64_t hi) {
    SUMSQ_PART(8);
}
__attribute__((target("avx2,fma"))) static double sumsq_avx2(const float *x32, const uint16_t *x16,
                                                              int64_t lo, int64_t hi) {
    SUMSQ_PART(4);
}
static double sumsq_base(const float *x32, const uint16_t *x16, int64_t lo, int64_t hi) { SUMSQ_PART(2); }

typedef double (*sumsq_fn)(const float *, const uint16_t *, int64_t, int64_t);

static double sumsq(const float *x32, const uint16_t *x16, int64_t n, int threads) {
    if (n <= 0) return 0.0;
    int64_t per = (n + SUM_PARTS - 1) / SUM_PARTS;
    if (per < SUM_MIN_PART) per = SUM_MIN_PART;
    per = (per + 15) / 16 * 16;
    int parts = (int)((n + per - 1) / per), t = team(threads);
    double part[SUM_PARTS];
    cpu_isa isa = cpu_isa_active();
    sumsq_fn run = isa == CPU_ISA_AVX512 ? sumsq_avx512 : isa == CPU_ISA_AVX2 ? sumsq_avx2 : sumsq_base;
    if (parts == 1 || t == 1) { /* no OpenMP region: even a serial one allocates in libgomp */
        for (int k = 0; k < parts; k++) part[k] = run(x32, x16, k * per, k * per + per < n ? k * per + per : n);
    } else {
#pragma omp parallel for num_threads(t) schedule(static)
        for (int k = 0; k < parts; k++) part[k] = run(x32, x16, k * per, k * per + per < n ? k * per + per : n);
    }
    double s = 0.0;
    for (int k = 0; k < parts; k++) s += part[k];
    return s;
}

double cpu_sumsq_f32(const float *x, int64_t n, int threads) { return sumsq(x, NULL, n, threads); }
double cpu_sumsq_bf16(const uint16_t *x, int64_t n, int threads) { return sumsq(NULL, x, n, threads); }
