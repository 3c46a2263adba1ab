/*
 * spec/c/check.h — a tiny C test harness.
 *
 * Each C file in spec/c declares tests with TEST(name) { ... }. They are linked
 * into one program, build/spec-c: `spec-c --list` prints the names and
 * `spec-c NAME` runs one (exit 0 = pass). spec/c_spec.lua runs each in its own
 * process, so a crash is a red test, not a dead runner.
 * CHECK* macros print the first failure with file:line and return 1.
 */
#ifndef MS_SPEC_CHECK_H
#define MS_SPEC_CHECK_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*spec_fn)(void);
void spec_register(const char *name, spec_fn fn);

#define TEST(name)                                                         \
    static int test_##name(void);                                          \
    __attribute__((constructor)) static void register_##name(void) {       \
        spec_register(#name, test_##name);                                 \
    }                                                                      \
    static int test_##name(void)

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                      \
        }                                                                  \
    } while (0)

#define CHECK_MSG(cond, ...)                                               \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            return 1;                                                      \
        }                                                                  \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_NEAR(a, b, atol, rtol)                                       \
    do {                                                                   \
        double a_ = (a), b_ = (b);                                         \
        if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) {              \
            fprintf(stderr, "%s:%d: %s = %.9g, expected %s = %.9g\n",      \
                    __FILE__, __LINE__, #a, a_, #b, b_);                   \
            return 1;                                                      \
        }                                                                  \
    } while (0)

/* Compare arrays; print the first few mismatches (llm.c's check_tensor). */
int check_arrays(const char *what, const float *got, const double *want, long n,
                 double atol, double rtol);
#define CHECK_ARRAYS(what, got, want, n, atol, rtol)                       \
    do {                                                                   \
        if (check_arrays(what, got, want, n, atol, rtol)) {                \
            fprintf(stderr, "  at %s:%d\n", __FILE__, __LINE__);           \
            return 1;                                                      \
        }                                                                  \
    } while (0)

/* Status checks: print ms_last_error() on failure. */
#define CHECK_OK(call)                                                     \
    do {                                                                   \
        ms_status st_ = (call);                                            \
        if (st_ != MS_OK) {                                                \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, ms_last_error()); \
            return 1;                                                      \
        }                                                                  \
    } while (0)

/* Expect a failure with the given status whose message contains `needle`. */
#define CHECK_FAILS(call, status, needle)                                  \
    do {                                                                   \
        ms_status st_ = (call);                                            \
        if (st_ != (status) || !strstr(ms_last_error(), (needle))) {       \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d with \"%s\"\n", \
                    __FILE__, __LINE__, #call, (int)st_, ms_last_error(), (int)(status), (needle)); \
            return 1;                                                      \
        }                                                                  \
    } while (0)

/* Fresh random input: deterministic per (seed) with values in [-scale, scale]. */
void fill_random(float *x, long n, unsigned seed, float scale);
#endif
