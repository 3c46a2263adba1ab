/*
 * spec/fuzz/hf_index.c — a Hugging Face folder's model.safetensors.index.json
 * (engine/ckpt/hf.c, core/json.c): the input replaces the index of a sharded
 * export of the tiny model (its config.json and shards stay) and is imported
 * through init.from by engine create. Patches edit the index the export wrote.
 */
#include <stdlib.h>
#include <string.h>

#include "tiny.h"

static ms_config cfg;
static uint8_t *base;
static size_t n_base;
static char hf[512];

int fuzz_setup(void) {
    if (base) return 0;
    char file[700];
    if (tiny_config(&cfg) || tiny_export(&cfg, "hf", 4096, hf, sizeof hf)) return 1; /* several shards */
    snprintf(file, sizeof file, "%s/model.safetensors.index.json", hf);
    base = fuzz_read(file, &n_base);
    cfg.init_from = hf;
    return base ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    return tiny_import(&cfg, "hf/model.safetensors.index.json", base, n_base, data, n);
}

int fuzz_seeds(const char *out) {
    if (fuzz_setup() != 0) return 1;
    const char *odd[] = {"{}", "{\"weight_map\": {}}", "{\"weight_map\": {\"model.norm.weight\": \"../x\"}}",
                         "{\"metadata\": {\"total_size\": -1}, \"weight_map\": []}"};
    if (fuzz_seed(out, "exported", base, n_base)) return 1;
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "odd-%zu", i);
        if (fuzz_seed(out, name, odd[i], strlen(odd[i]))) return 1;
    }
    return 0;
}
