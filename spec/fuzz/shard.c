/*
 * spec/fuzz/shard.c — token shard files (engine/data/shard.c, dataset.c): the
 * header check of ms_shard_info_read, then ms_dataset_open, which maps the file
 * and checks every token against the vocabulary, and a batch drawn from it.
 */
#include <stdio.h>
#include <string.h>

#include "data/data.h"
#include "fuzz.h"

int fuzz_setup(void) { return 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file("shard.bin", data, n);
    ms_shard_info info;
    ms_status st = ms_shard_info_read(path, &info);
    ms_dataset d;
    if (ms_dataset_open(&d, path, 0, NULL, 4) == MS_OK) {
        if (st != MS_OK || d.tokens != info.n_tokens) __builtin_trap(); /* the two readers must agree */
        int32_t x[2 * 5], y[2 * 5];
        ms_batch_train(&d, 1, 0, 0, 2, 4, x, y);
        ms_dataset_close(&d);
    }
    return 0;
}

int fuzz_seeds(const char *dir) {
    char path[512];
    uint32_t tokens[64];
    for (int i = 0; i < 64; i++) tokens[i] = (uint32_t)(i * 7 % 258);
    const struct { const char *name; int n; int vocab; const char *tok; } seeds[] = {
        {"bytes-64", 64, 258, "bytes"}, {"bytes-5", 5, 258, "bytes"}, {"empty", 0, 258, "bytes"},
        {"llama3-16", 16, 128256, "llama3-82e9d31979e92ab929cd5444"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, seeds[i].name);
        if (ms_shard_write(path, tokens, seeds[i].n, seeds[i].vocab, seeds[i].tok) != MS_OK) return 1;
    }
    return 0;
}
