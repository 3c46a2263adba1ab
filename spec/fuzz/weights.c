/*
 * spec/fuzz/weights.c — the weights file (engine/ckpt/weights.c) loaded into a
 * tiny engine: raw files, and patches of the file that engine saves (its header,
 * unit names and sizes).
 */
#include <stdlib.h>
#include <string.h>

#include "tiny.h"

static ms_engine *engine;
static uint8_t *base;
static size_t n_base;

int fuzz_setup(void) {
    if (engine) return 0;
    char saved[512];
    snprintf(saved, sizeof saved, "%s/saved.bin", fuzz_dir());
    ms_config c;
    if (tiny_config(&c)) return 1;
    if (ms_engine_create(&c, &engine) != MS_OK || ms_engine_save_weights(engine, saved) != MS_OK) {
        fprintf(stderr, "fuzz weights: %s\n", ms_last_error());
        return 1;
    }
    base = fuzz_read(saved, &n_base);
    return base ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    size_t len = 0;
    uint8_t *patched = fuzz_patch(base, n_base, data, n, &len);
    const char *path = patched ? fuzz_file("weights.bin", patched, len) : fuzz_file("weights.bin", data, n);
    free(patched);
    (void)ms_engine_load_weights(engine, path);
    return 0;
}

int fuzz_seeds(const char *dir) {
    if (fuzz_setup() != 0) return 1;
    if (fuzz_seed(dir, "saved", base, n_base) || fuzz_seed(dir, "head", base, 16) ||
        fuzz_seed(dir, "unit", base, 16 + 56 + 8))
        return 1;
    uint8_t p[128];
    size_t len;
    struct { uint32_t at; const char *bytes; uint8_t n; } edits[] = {
        {0, NULL, 0}, {8, "\x02", 1}, {12, "\x09", 1}, {16, "block.0", 7}, {64, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8},
        {100, "", 0},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        len = sizeof FUZZ_PATCH_TAG - 1;
        memcpy(p, FUZZ_PATCH_TAG, len);
        if (edits[i].bytes) fuzz_patch_record(p, &len, edits[i].at, edits[i].bytes, edits[i].n);
        char name[32];
        snprintf(name, sizeof name, "patch-%zu", i);
        if (fuzz_seed(dir, name, p, len)) return 1;
    }
    return 0;
}
