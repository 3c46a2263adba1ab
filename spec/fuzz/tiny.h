/*
 * spec/fuzz/tiny.h — the tiny model the weights, checkpoint and Hugging Face targets load
 * their inputs into: its config (on byte-level shards in the fuzzer's folder),
 * and folders the project's own writers fill for it. Included by one target
 * each (static inline functions).
 */
#ifndef MS_SPEC_FUZZ_TINY_H
#define MS_SPEC_FUZZ_TINY_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "include/moonspeed.h"

/* The config, with train.bin and val.bin written into the fuzzer's folder. */
static inline int tiny_config(ms_config *c) {
    static char train[512], val[512];
    uint32_t tokens[512];
    for (int i = 0; i < 512; i++) tokens[i] = (uint32_t)(i * 31 % 256);
    snprintf(train, sizeof train, "%s/train.bin", fuzz_dir());
    snprintf(val, sizeof val, "%s/val.bin", fuzz_dir());
    if (ms_shard_write(train, tokens, 512, 258, "bytes") != MS_OK || ms_shard_write(val, tokens, 64, 258, "bytes") != MS_OK)
        return 1;
    ms_config_defaults(c);
    c->model.dim = 16;
    c->model.n_layers = 2;
    c->model.n_heads = 2;
    c->model.n_kv_heads = 1;
    c->model.ffn_dim = 32;
    c->train.seq_len = 8;
    c->train.batch = 2;
    c->train.micro_batch = 2;
    c->threads = 1;
    c->train_path = train;
    c->val_path = val;
    c->tokenizer = "bytes";
    return 0;
}

/* <fuzz folder>/<name>: a Hugging Face export of the model after one step
 * (bf16, shards of at most max_shard bytes). */
static inline int tiny_export(const ms_config *c, const char *name, int64_t max_shard, char *dir, size_t n) {
    char weights[600];
    snprintf(weights, sizeof weights, "%s/%s.bin", fuzz_dir(), name);
    snprintf(dir, n, "%s/%s", fuzz_dir(), name);
    ms_engine *e = NULL;
    ms_hf_export_options o = {.dtype = MS_BF16, .bos_token = 256, .eos_token = 257, .max_shard_bytes = max_shard};
    int bad = ms_engine_create(c, &e) != MS_OK || ms_engine_step(e, NULL) != MS_OK ||
              ms_engine_save_weights(e, weights) != MS_OK || ms_hf_export(c, weights, dir, &o, NULL) != MS_OK;
    if (bad) fprintf(stderr, "fuzz: making the Hugging Face folder: %s\n", ms_last_error());
    ms_engine_free(e);
    return bad;
}

/* One input as <fuzz folder>/<file> (a patch input applied to base first),
 * then an engine created from c, which reads it through c->init_from. */
static inline int tiny_import(const ms_config *c, const char *file, const uint8_t *base, size_t n_base,
                              const uint8_t *data, size_t n) {
    size_t len = 0;
    uint8_t *patched = fuzz_patch(base, n_base, data, n, &len);
    if (patched) fuzz_file(file, patched, len);
    else fuzz_file(file, data, n);
    free(patched);
    ms_engine *e = NULL;
    if (ms_engine_create(c, &e) == MS_OK) ms_engine_free(e);
    return 0;
}

#endif
