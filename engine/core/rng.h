/*
 * core/rng.h — a counter-based random number generator (Philox4x32-10).
 *
 * A draw is a pure function of (key, counter): no state to carry, so any
 * element of any tensor, or any data position of any step and rank, can be
 * drawn alone and comes out the same as when drawn in a sequence. This is what
 * makes initialization independent of sharding and data order resumable.
 */
#ifndef MS_CORE_RNG_H
#define MS_CORE_RNG_H
#include <stdint.h>

/* Four 32-bit words for (key, counter = (c0, c1)). */
void ms_philox(uint64_t key, uint64_t c0, uint64_t c1, uint32_t out[4]);

/* Uniform in (0, 1) and standard normal, from the same (key, c0, c1). */
float ms_rng_uniform(uint64_t key, uint64_t c0, uint64_t c1);
float ms_rng_normal(uint64_t key, uint64_t c0, uint64_t c1);
/* Uniform integer in [0, n). */
uint64_t ms_rng_below(uint64_t key, uint64_t c0, uint64_t c1, uint64_t n);

/* Streams keep unrelated uses of one seed apart: key = seed mixed with a stream. */
enum { MS_STREAM_INIT = 1, MS_STREAM_DATA = 2, MS_STREAM_SAMPLE = 3 };
uint64_t ms_rng_key(uint64_t seed, uint32_t stream);

#endif
