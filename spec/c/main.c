/* spec/c/main.c — the runner behind check.h: --list, or run one test by name. */
#include "check.h"

#define MAX_SPECS 512
static struct { const char *name; spec_fn fn; } specs[MAX_SPECS];
static int n_specs;

void spec_register(const char *name, spec_fn fn) {
    if (n_specs < MAX_SPECS) {
        specs[n_specs].name = name;
        specs[n_specs].fn = fn;
        n_specs++;
    }
}

int check_arrays(const char *what, const float *got, const double *want, long n,
                 double atol, double rtol) {
    int bad = 0;
    for (long i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= atol + rtol * fabs(want[i]))) {
            if (bad < 5)
                fprintf(stderr, "%s[%ld]: got %.9g, want %.9g (err %.3g)\n", what, i,
                        (double)got[i], want[i], err);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "%s: %d of %ld elements outside atol %g rtol %g\n", what, bad, n, atol, rtol);
    return bad != 0;
}

void fill_random(float *x, long n, unsigned seed, float scale) {
    unsigned long long s = 0x9E3779B97F4A7C15ull * (seed + 1);
    for (long i = 0; i < n; i++) {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        unsigned long long r = s * 0x2545F4914F6CDD1Dull;
        x[i] = scale * (float)(((double)(r >> 11) / 9007199254740992.0) * 2.0 - 1.0);
    }
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < n_specs; i++) puts(specs[i].name);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: spec-c --list | spec-c NAME\n");
        return 2;
    }
    for (int i = 0; i < n_specs; i++)
        if (strcmp(specs[i].name, argv[1]) == 0) return specs[i].fn();
    fprintf(stderr, "spec-c: no test named %s (see spec-c --list)\n", argv[1]);
    return 2;
}
