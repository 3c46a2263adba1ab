/*
 * spec/fuzz/tokenizer_model.c — Meta's tiktoken tokenizer.model (engine/data/bpe_load.c):
 * raw files, and patches of a synthetic 128,000-rank file (vocab.h) that pass the
 * line-count gate and reach the rank checks, the table build and encoding.
 */
#include "vocab.h"

static uint8_t *base;
static size_t n_base;

int fuzz_setup(void) {
    base = vocab_tiktoken(&n_base);
    return base ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    vocab_exercise("tokenizer.model", base, n_base, data, n);
    return 0;
}

int fuzz_seeds(const char *dir) {
    static const char *raw[] = {
        "IQ== 0\nIg== 1\n", "IQ== 0\nIg== 1", "IQ==0\n", "IQ== x\n", "I=Q= 0\n", "IQ== 99999999999999999999\n", "",
    };
    char name[32];
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        snprintf(name, sizeof name, "raw-%zu", i);
        if (fuzz_seed(dir, name, raw[i], strlen(raw[i]))) return 1;
    }
    /* patches: none (the valid base), a changed rank, a duplicate token, a cut */
    uint8_t p[256];
    size_t len;
    struct { uint32_t at; const char *bytes; } edits[] = {
        {0, NULL}, {7, "7"}, {2069, "QUI"}, {1000000, ""}, {9, "QQ=="},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        len = sizeof FUZZ_PATCH_TAG - 1;
        memcpy(p, FUZZ_PATCH_TAG, len);
        if (edits[i].bytes) fuzz_patch_record(p, &len, edits[i].at, edits[i].bytes, (uint8_t)strlen(edits[i].bytes));
        snprintf(name, sizeof name, "patch-%zu", i);
        if (fuzz_seed(dir, name, p, len)) return 1;
    }
    return 0;
}
