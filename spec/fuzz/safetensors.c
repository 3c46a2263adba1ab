/*
 * spec/fuzz/safetensors.c — Hugging Face model directories (engine/ckpt/
 * safetensors.c, hf.c): the input is model.safetensors beside a config.json that
 * matches a tiny model, imported through init.from by engine create, which
 * checks the header (length, JSON, dtypes, shapes, offsets) and reads each
 * tensor. Patches edit a file the project's own export wrote.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "include/moonspeed.h"

static ms_config cfg;
static uint8_t *base;
static size_t n_base;
static char hf[512], train[512], val[512];

int fuzz_setup(void) {
    if (base) return 0;
    uint32_t tokens[512];
    for (int i = 0; i < 512; i++) tokens[i] = (uint32_t)(i * 31 % 256);
    snprintf(train, sizeof train, "%s/train.bin", fuzz_dir());
    snprintf(val, sizeof val, "%s/val.bin", fuzz_dir());
    char weights[600], made[600], file[700];
    snprintf(weights, sizeof weights, "%s/model.bin", fuzz_dir());
    snprintf(made, sizeof made, "%s/made", fuzz_dir());
    snprintf(hf, sizeof hf, "%s/hf", fuzz_dir());
    if (ms_shard_write(train, tokens, 512, 258, "bytes") != MS_OK || ms_shard_write(val, tokens, 64, 258, "bytes") != MS_OK)
        return 1;
    ms_config_defaults(&cfg);
    cfg.model.dim = 16;
    cfg.model.n_layers = 2;
    cfg.model.n_heads = 2;
    cfg.model.n_kv_heads = 1;
    cfg.model.ffn_dim = 32;
    cfg.train.seq_len = 8;
    cfg.train.batch = 2;
    cfg.train.micro_batch = 2;
    cfg.threads = 1;
    cfg.train_path = train;
    cfg.val_path = val;
    cfg.tokenizer = "bytes";
    ms_engine *e = NULL;
    ms_hf_export_options o = {.dtype = MS_BF16, .bos_token = 256, .eos_token = 257};
    if (ms_engine_create(&cfg, &e) != MS_OK || ms_engine_save_weights(e, weights) != MS_OK ||
        ms_hf_export(&cfg, weights, made, &o, NULL) != MS_OK) {
        fprintf(stderr, "fuzz safetensors: %s\n", ms_last_error());
        return 1;
    }
    ms_engine_free(e);
    /* the importer reads hf/: the exported config.json, and each input as model.safetensors */
    if (mkdir(hf, 0700) != 0) return 1;
    size_t n_config;
    snprintf(file, sizeof file, "%s/config.json", made);
    uint8_t *config = fuzz_read(file, &n_config);
    if (!config) return 1;
    fuzz_file("hf/config.json", config, n_config);
    free(config);
    snprintf(file, sizeof file, "%s/model-00001-of-00001.safetensors", made);
    base = fuzz_read(file, &n_base);
    cfg.init_from = hf;
    return base ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    size_t len = 0;
    uint8_t *patched = fuzz_patch(base, n_base, data, n, &len);
    if (patched) fuzz_file("hf/model.safetensors", patched, len);
    else fuzz_file("hf/model.safetensors", data, n);
    free(patched);
    ms_engine *e = NULL;
    if (ms_engine_create(&cfg, &e) == MS_OK) ms_engine_free(e);
    return 0;
}

int fuzz_seeds(const char *out) {
    if (fuzz_setup() != 0) return 1;
    if (fuzz_seed(out, "exported", base, n_base) || fuzz_seed(out, "head", base, 8)) return 1;
    uint8_t p[128];
    size_t len;
    struct { uint32_t at; const char *bytes; uint8_t n; } edits[] = {
        {0, "\xff\xff\xff\xff\xff\xff\xff\x7f", 8},   /* a header longer than the file */
        {8, "[", 1},                                  /* not an object */
        {20, "\"F64\"", 5},                           /* a dtype the reader does not take */
        {40, "99999999999", 11},                      /* offsets out of range */
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        len = sizeof FUZZ_PATCH_TAG - 1;
        memcpy(p, FUZZ_PATCH_TAG, len);
        fuzz_patch_record(p, &len, edits[i].at, edits[i].bytes, edits[i].n);
        char name[32];
        snprintf(name, sizeof name, "patch-%zu", i);
        if (fuzz_seed(out, name, p, len)) return 1;
    }
    return 0;
}
