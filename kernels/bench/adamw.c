/*
 * kernels/bench/adamw.c — the host AdamW workbench: cpu_adamw_fast
 * (kernels/cpu/adamw_simd.c) on every ISA path this CPU has, against the
 * scalar reference cpu_adamw, on fresh random inputs; then timed.
 *
 *   build/bench-adamw [-n N] [-t THREADS] [-i ITERS]
 *       N        parameters (default 218112000: one Llama-3-8B block)
 *       THREADS  OpenMP threads (default: every core)
 *       ITERS    timed steps per variant, after 2 warm-ups (default 7)
 *
 * First a check: each path's result on the first 1 M elements equals the
 * reference bit for bit (params, moments, bf16 output against cpu_bf16_round);
 * exit 1 otherwise. Then one "BENCH ..." line per variant: median step time,
 * parameters/s and GB/s counted as the bytes an ideal kernel moves:
 *   fp32       p m v read + written, g read:                 28 B/param
 *   bf16       p m v read + written, g (bf16) read, bf16 out: 28 B/param
 *   block      bf16, one call per tensor of a Llama-3-8B block (the offload's calls)
 *   spare      bf16 from the state into a second copy (the offload's bet)
 *   busy       bf16 while one more thread spins on a core (as the thread that
 *              drives the GPU does beside the offload's updates)
 *   reference  cpu_adamw (the CPU backend's scalar loop):     28 B/param
 *   sumsq      fp32 4 B/param, bf16 2 B/param
 * and last "RESULT moonspeed fp32 <params/s>" and "RESULT moonspeed bf16
 * <params/s>" (the best path) for kernels/bench/adamw_run.sh, which puts them
 * next to torch.optim.AdamW(fused=True) (spec/peers/torch_adamw.py).
 * Memory is first touched by all the threads (NUMA).
 */
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"

#define CHECK_N 1000000L

static float rnd(uint64_t i, uint64_t salt) { /* splitmix64 of (i, salt), uniform in [-1, 1) */
    uint64_t z = i * 0x9e3779b97f4a7c15ull + salt * 0xbf58476d1ce4e5b9ull + 1;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(z >> 40) / (float)(1 << 23) - 1.0f;
}

static uint16_t bf16_of(float x) {
    float r = cpu_bf16_round(x);
    uint32_t u;
    memcpy(&u, &r, sizeof u);
    return (uint16_t)(u >> 16);
}

typedef struct state {
    long n;
    float *p, *m, *v, *g; /* (n) */
    uint16_t *g16, *out;  /* (n) */
    float *spare[3];      /* (n) p m v of the second copy (spare), or NULL */
} state;

static void *big(size_t bytes) {
    void *x = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!x) {
        fprintf(stderr, "bench-adamw: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    return x;
}

/* fresh values, written by all the threads (first touch spreads the pages over the NUMA nodes) */
static state make_state(long n, uint64_t salt) {
    state s = {.n = n, .p = big(4 * (size_t)n), .m = big(4 * (size_t)n), .v = big(4 * (size_t)n),
               .g = big(4 * (size_t)n), .g16 = big(2 * (size_t)n), .out = big(2 * (size_t)n)};
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        s.p[i] = rnd(i, salt);
        s.m[i] = 1e-3f * rnd(i, salt + 1);
        s.v[i] = 1e-6f * (1.0f + rnd(i, salt + 2));
        s.g[i] = 1e-2f * rnd(i, salt + 3);
        s.g16[i] = bf16_of(s.g[i]);
        s.out[i] = 0;
    }
    return s;
}

static state copy_state(const state *a) {
    state s = make_state(a->n, 0);
    memcpy(s.p, a->p, 4 * (size_t)a->n);
    memcpy(s.m, a->m, 4 * (size_t)a->n);
    memcpy(s.v, a->v, 4 * (size_t)a->n);
    return s;
}

static const cpu_adam_hp HP = {
    .lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .grad_scale = 0.8f, .step = 1000};

/* every path against cpu_adamw on the first CHECK_N elements; 0 when all agree */
static int check(long n) {
    state ref = make_state(n, 77);
    float *gref = big(4 * (size_t)n);
    for (long i = 0; i < n; i++) gref[i] = cpu_bf16_round(ref.g[i]); /* what the bf16 grads hold */
    for (int isa = cpu_isa_best(); isa >= CPU_ISA_BASE; isa--) {
        cpu_isa_force((cpu_isa)isa);
        for (int bf = 0; bf <= 1; bf++) {
            state a = copy_state(&ref), r = copy_state(&ref);
            cpu_adamw_fast(a.p, a.m, a.v, bf ? (const void *)ref.g16 : ref.g, bf, a.out, n, &HP, 0);
            cpu_adamw(r.p, r.m, r.v, bf ? gref : ref.g, n, HP.lr, HP.beta1, HP.beta2, HP.eps, HP.weight_decay,
                      HP.grad_scale, HP.step);
            for (long i = 0; i < n; i++)
                if (memcmp(&a.p[i], &r.p[i], 4) || memcmp(&a.m[i], &r.m[i], 4) || memcmp(&a.v[i], &r.v[i], 4) ||
                    a.out[i] != bf16_of(r.p[i])) {
                    fprintf(stderr, "bench-adamw: %s, %s grads: element %ld differs from cpu_adamw\n",
                            cpu_isa_name((cpu_isa)isa), bf ? "bf16" : "fp32", i);
                    return 1;
                }
        }
    }
    cpu_isa_force(cpu_isa_best());
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef enum { V_FP32, V_BF16, V_BF16_PLAIN, V_BLOCK, V_SPARE, V_BUSY, V_REFERENCE, V_SUMSQ_F32, V_SUMSQ_BF16 } variant;

/* the tensors of one Llama-3-8B block, in elements: q k v o, gate up down, two norms */
static const long BLOCK[] = {4096L * 4096, 1024L * 4096, 1024L * 4096, 4096L * 4096, 14336L * 4096,
                             14336L * 4096, 4096L * 14336, 4096, 4096};

static volatile double sink;

static void step(state *s, variant k, int threads) {
    switch (k) {
    case V_FP32: cpu_adamw_fast(s->p, s->m, s->v, s->g, 0, NULL, s->n, &HP, threads); break;
    case V_BF16: cpu_adamw_fast(s->p, s->m, s->v, s->g16, 1, s->out, s->n, &HP, threads); break;
    case V_BF16_PLAIN: /* the output one element off alignment: ordinary stores */
        cpu_adamw_fast(s->p, s->m, s->v, s->g16, 1, s->out + 1, s->n - 1, &HP, threads);
        break;
    case V_BLOCK:
        for (long off = 0, t = 0; off < s->n; off += BLOCK[t], t = (t + 1) % 9) {
            long len = BLOCK[t] < s->n - off ? BLOCK[t] : s->n - off;
            cpu_adamw_fast(s->p + off, s->m + off, s->v + off, s->g16 + off, 1, s->out + off, len, &HP, threads);
        }
        break;
    case V_SPARE:
        cpu_adamw_fast_from(s->p, s->m, s->v, s->spare[0], s->spare[1], s->spare[2], s->g16, 1, s->out, s->n, &HP,
                            threads);
        break;
    case V_BUSY: cpu_adamw_fast(s->p, s->m, s->v, s->g16, 1, s->out, s->n, &HP, threads); break;
    case V_REFERENCE:
        cpu_adamw(s->p, s->m, s->v, s->g, s->n, HP.lr, HP.beta1, HP.beta2, HP.eps, HP.weight_decay, HP.grad_scale,
                  HP.step);
        break;
    case V_SUMSQ_F32: sink = cpu_sumsq_f32(s->g, s->n, threads); break;
    case V_SUMSQ_BF16: sink = cpu_sumsq_bf16(s->g16, s->n, threads); break;
    }
}

static atomic_int spinning;

static void *spin(void *arg) {
    (void)arg;
    while (atomic_load_explicit(&spinning, memory_order_relaxed)) sink += 1.0;
    return NULL;
}

/* median seconds of iters steps after 2 warm-ups (V_BUSY: beside a spinning thread) */
static double timed(state *s, variant k, int threads, int iters) {
    double t[64];
    pthread_t busy;
    if (k == V_SPARE && !s->spare[0])
        for (int j = 0; j < 3; j++) s->spare[j] = big(4 * (size_t)s->n);
    atomic_store(&spinning, k == V_BUSY);
    if (k == V_BUSY && pthread_create(&busy, NULL, spin, NULL)) {
        fprintf(stderr, "bench-adamw: cannot start the busy thread\n");
        exit(1);
    }
    for (int i = 0; i < 2; i++) step(s, k, threads);
    for (int i = 0; i < iters; i++) {
        double t0 = omp_get_wtime();
        step(s, k, threads);
        t[i] = omp_get_wtime() - t0;
    }
    if (k == V_BUSY) {
        atomic_store(&spinning, 0);
        pthread_join(busy, NULL);
    }
    qsort(t, iters, sizeof t[0], cmp_double);
    return t[iters / 2];
}

int main(int argc, char **argv) {
    long n = 218112000L;
    int threads = omp_get_num_procs(), iters = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atol(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-i") && i + 1 < argc) iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench-adamw [-n N] [-t THREADS] [-i ITERS]\n");
            return 2;
        }
    }
    if (n < 1 || threads < 1 || iters < 1 || iters > 64) {
        fprintf(stderr, "bench-adamw: need N >= 1, THREADS >= 1, 1 <= ITERS <= 64\n");
        return 2;
    }
    omp_set_num_threads(threads);
    if (check(n < CHECK_N ? n : CHECK_N)) return 1;
    printf("bench-adamw: every ISA path equals cpu_adamw bit for bit on %ld elements (fp32 and bf16 grads)\n",
           n < CHECK_N ? n : CHECK_N);

    state s = make_state(n, 1);
    static const struct { variant k; const char *name; double bytes; int all_isas; } V[] = {
        {V_FP32, "adamw fp32", 28, 1},         {V_BF16, "adamw bf16", 28, 1},
        {V_BF16_PLAIN, "adamw bf16 plain", 28, 0},
        {V_BLOCK, "adamw bf16 block", 28, 0},  {V_SPARE, "adamw bf16 spare", 28, 0},
        {V_BUSY, "adamw bf16 busy", 28, 0},    {V_REFERENCE, "adamw reference", 28, 0},
        {V_SUMSQ_F32, "sumsq fp32", 4, 0},     {V_SUMSQ_BF16, "sumsq bf16", 2, 0},
    };
    double best[2] = {0, 0};
    for (size_t k = 0; k < sizeof V / sizeof V[0]; k++) {
        for (int isa = cpu_isa_best(); isa >= (V[k].all_isas ? CPU_ISA_BASE : (int)cpu_isa_best()); isa--) {
            cpu_isa_force((cpu_isa)isa);
            double sec = timed(&s, V[k].k, threads, iters), rate = n / sec;
            printf("BENCH moonspeed %-16s isa=%-9s N=%ld T=%d: %8.2f ms (median of %d), %6.3f G params/s, "
                   "%6.1f GB/s\n",
                   V[k].name, V[k].k == V_REFERENCE ? "scalar" : cpu_isa_name((cpu_isa)isa), n, threads,
                   sec * 1e3, iters, rate * 1e-9, rate * V[k].bytes * 1e-9);
            if (V[k].k <= V_BF16 && rate > best[V[k].k]) best[V[k].k] = rate;
        }
    }
    cpu_isa_force(cpu_isa_best());
    printf("RESULT moonspeed fp32 %.6g\nRESULT moonspeed bf16 %.6g\n", best[0], best[1]);
    return 0;
}
