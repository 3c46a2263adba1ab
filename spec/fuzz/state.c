/*
 * spec/fuzz/state.c — checkpoint state files (engine/ckpt/state.c) loaded into a
 * tiny engine. The input is the file of rank 0 of a world of one, recorded with
 * its own size and CRC-32C, so that the reader's header and unit-table checks
 * (not the checksum) meet it; patches edit the file that engine saves.
 */
#include <stdlib.h>
#include <string.h>

#include "tiny.h"

static ms_engine *engine;
static uint8_t *base;
static size_t n_base;
static char dir[512];

static ms_state_file record_of(const char *path) {
    ms_state_file rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.name, sizeof rec.name, "rank-00000-of-00001.state");
    uint32_t crc = 0;
    uint64_t bytes = 0;
    if (ms_crc32c_file(path, &crc, &bytes) == MS_OK) rec.crc32c = crc, rec.bytes = bytes;
    return rec;
}

int fuzz_setup(void) {
    if (engine) return 0;
    char saved[600];
    ms_config c;
    snprintf(dir, sizeof dir, "%s/ckpt", fuzz_dir());
    if (tiny_config(&c)) return 1;
    ms_state_file rec;
    int32_t done = 0;
    if (mkdir(dir, 0700) != 0) return 1;
    if (ms_engine_create(&c, &engine) != MS_OK || ms_engine_step(engine, NULL) != MS_OK ||
        ms_engine_state_save(engine, dir, 0) != MS_OK || ms_engine_state_wait(engine, 1, &done, &rec) != MS_OK) {
        fprintf(stderr, "fuzz state: %s\n", ms_last_error());
        return 1;
    }
    snprintf(saved, sizeof saved, "%s/%s", dir, rec.name);
    base = fuzz_read(saved, &n_base);
    return base ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    size_t len = 0;
    uint8_t *patched = fuzz_patch(base, n_base, data, n, &len);
    const char *path = patched ? fuzz_file("ckpt/rank-00000-of-00001.state", patched, len)
                               : fuzz_file("ckpt/rank-00000-of-00001.state", data, n);
    free(patched);
    ms_state_file rec = record_of(path);
    (void)ms_engine_state_load(engine, dir, &rec, 1);
    return 0;
}

int fuzz_seeds(const char *out) {
    if (fuzz_setup() != 0) return 1;
    /* the whole file, its header, its header and unit table */
    if (fuzz_seed(out, "saved", base, n_base) || fuzz_seed(out, "head", base, 40) ||
        fuzz_seed(out, "table", base, 40 + 4 * 72))
        return 1;
    uint8_t p[128];
    size_t len;
    struct { uint32_t at; const char *bytes; uint8_t n; } edits[] = {
        {12, "\x02", 1},                              /* world 2 */
        {16, "\x09", 1},                              /* 9 units */
        {40, "block.0", 7},                           /* a unit renamed */
        {40 + 48 + 8, "\xff\xff\xff\xff", 4},         /* lo far past numel */
        {40 + 48 + 16, "\x00\x00\x00\x00\x00\x00\x00\x80", 8}, /* hi huge */
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
