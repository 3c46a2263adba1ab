/*
 * spec/fuzz/ckpt_meta.c — a checkpoint's meta.json as engine/ckpt/state.c reads
 * it when a checkpoint is a weight source (init.from, export): the file list,
 * each name, size and CRC-32C, then the state files it names. The input
 * replaces the meta.json of a checkpoint of the tiny model.
 */
#include <stdlib.h>
#include <string.h>

#include "tiny.h"

static ms_config cfg;
static char meta[1024];
static size_t n_meta;

int fuzz_setup(void) {
    if (n_meta) return 0;
    static char dir[512];
    ms_engine *e = NULL;
    ms_state_file rec;
    int32_t done = 0;
    snprintf(dir, sizeof dir, "%s/ck", fuzz_dir());
    if (tiny_config(&cfg) || mkdir(dir, 0700) != 0) return 1;
    if (ms_engine_create(&cfg, &e) != MS_OK || ms_engine_step(e, NULL) != MS_OK ||
        ms_engine_state_save(e, dir, 0) != MS_OK || ms_engine_state_wait(e, 1, &done, &rec) != MS_OK) {
        fprintf(stderr, "fuzz ckpt_meta: %s\n", ms_last_error());
        return 1;
    }
    ms_engine_free(e);
    n_meta = (size_t)snprintf(meta, sizeof meta, "{\"format\": \"moonspeed checkpoint\", \"version\": 1, \"step\": 1, "
                              "\"world_size\": 1, \"files\": [{\"name\": \"%s\", \"bytes\": %llu, \"crc32c\": \"%08x\"}]}",
                              rec.name, (unsigned long long)rec.bytes, rec.crc32c);
    cfg.init_from = dir;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    return tiny_import(&cfg, "ck/meta.json", (const uint8_t *)meta, n_meta, data, n);
}

int fuzz_seeds(const char *out) {
    if (fuzz_setup() != 0) return 1;
    const char *odd[] = {"{\"files\": []}", "{\"files\": [{\"name\": \"rank-00000-of-00001.state\"}]}",
                         "{\"files\": [{\"name\": \"../../etc/passwd\", \"bytes\": 1, \"crc32c\": \"00000000\"}]}"};
    if (fuzz_seed(out, "valid", meta, n_meta)) return 1;
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "odd-%zu", i);
        if (fuzz_seed(out, name, odd[i], strlen(odd[i]))) return 1;
    }
    return 0;
}
