/*
 * spec/fuzz/safetensors.c — a Hugging Face folder's model.safetensors
 * (engine/ckpt/safetensors.c, hf.c): each input is written beside a config.json
 * that matches the tiny model and imported through init.from by engine create,
 * which checks the header (length, JSON, dtypes, shapes, offsets) and reads
 * every tensor. Patches edit a file the project's own export wrote.
 */
#include <stdlib.h>
#include <string.h>

#include "tiny.h"

static ms_config cfg;
static uint8_t *base;
static size_t n_base;
static char made[512], hf[512];

int fuzz_setup(void) {
    if (base) return 0;
    char file[700];
    size_t n_config;
    if (tiny_config(&cfg) || tiny_export(&cfg, "made", 0, made, sizeof made)) return 1;
    snprintf(hf, sizeof hf, "%s/hf", fuzz_dir());
    snprintf(file, sizeof file, "%s/config.json", made);
    uint8_t *config = fuzz_read(file, &n_config);
    if (!config || mkdir(hf, 0700) != 0) return 1;
    fuzz_file("hf/config.json", config, n_config);
    free(config);
    snprintf(file, sizeof file, "%s/model-00001-of-00001.safetensors", made);
    base = fuzz_read(file, &n_base);
    cfg.init_from = hf;
    return base ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    return tiny_import(&cfg, "hf/model.safetensors", base, n_base, data, n);
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
