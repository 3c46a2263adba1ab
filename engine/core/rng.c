/*
 * core/rng.c — Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3", SC'11), with the published multipliers and Weyl constants.
 */
#include <math.h>

#include "core/rng.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void ms_philox(uint64_t key, uint64_t c0, uint64_t c1, uint32_t out[4]) {
    uint32_t c[4] = {(uint32_t)c0, (uint32_t)(c0 >> 32), (uint32_t)c1, (uint32_t)(c1 >> 32)};
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
        uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c[0] = hi1 ^ c[1] ^ k0;
        c[1] = lo1;
        c[2] = hi0 ^ c[3] ^ k1;
        c[3] = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

/* 24 random bits, centred in their interval: never exactly 0 or 1. */
static float unit_float(uint32_t x) { return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f); }

float ms_rng_uniform(uint64_t key, uint64_t c0, uint64_t c1) {
    uint32_t r[4];
    ms_philox(key, c0, c1, r);
    return unit_float(r[0]);
}

float ms_rng_normal(uint64_t key, uint64_t c0, uint64_t c1) {
    uint32_t r[4];
    ms_philox(key, c0, c1, r);
    /* Box-Muller in double so the tails do not depend on float rounding. */
    double u1 = unit_float(r[0]), u2 = unit_float(r[1]);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t ms_rng_below(uint64_t key, uint64_t c0, uint64_t c1, uint64_t n) {
    uint32_t r[4];
    ms_philox(key, c0, c1, r);
    uint64_t x = ((uint64_t)r[0] << 32) | r[1];
    return n ? x % n : 0; /* bias below 2^-40 for the sizes we draw */
}

uint64_t ms_rng_key(uint64_t seed, uint32_t stream) {
    uint32_t r[4];
    ms_philox(seed, stream, 0x6d6f6f6e73706565ull /* "moonspee" */, r);
    return ((uint64_t)r[0] << 32) | r[1];
}
