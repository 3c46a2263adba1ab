/*
 * spec/fuzz/jsonl.c — JSONL corpora (engine/data/corpus.c): `moonspeed tokenize`
 * reads each line's "text" field with its own small JSON reader. The input is a
 * .jsonl file, tokenized with the byte-level tokenizer into shards; the shards it
 * writes must hold exactly the tokens the report counts.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "include/moonspeed.h"

static ms_tokenizer *bytes;

int fuzz_setup(void) {
    char out[512];
    snprintf(out, sizeof out, "%s/out", fuzz_dir());
    return mkdir(out, 0755) == 0 && ms_tokenizer_load("bytes", &bytes) == MS_OK ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *in = fuzz_file("corpus.jsonl", data, n);
    char out[512], shard[600];
    snprintf(out, sizeof out, "%s/out", fuzz_dir());
    ms_tokenize_options opt = {.val_fraction = 0.25, .shard_tokens = 4096, .threads = 1};
    ms_tokenize_report rep;
    const char *inputs[1] = {in};
    if (ms_tokenize_files(bytes, inputs, 1, out, &opt, &rep) != MS_OK) return 0;
    int64_t seen = 0;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < (s ? rep.val_shards : rep.train_shards); k++) {
            ms_shard_info info;
            snprintf(shard, sizeof shard, "%s/%s-%05d.bin", out, s ? "val" : "train", k);
            if (ms_shard_info_read(shard, &info) != MS_OK) __builtin_trap();
            seen += info.n_tokens;
            remove(shard);
        }
    if (seen != rep.train_tokens + rep.val_tokens) __builtin_trap();
    return 0;
}

int fuzz_seeds(const char *dir) {
    static const char *seeds[][2] = {
        {"two", "{\"text\": \"In the beginning\"}\n{\"id\": 2, \"text\": \"God created\\n\"}\n"},
        {"escapes", "{\"text\": \"\\u00e9\\ud83d\\ude00 \\ud800 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\"}\n"},
        {"nested", "{\"meta\": {\"a\": [1, {\"b\": \"}\"}], \"c\": null}, \"text\": \"x\", \"text\": \"y\"}\r\n"},
        {"notext", "{\"body\": \"no text here\"}\n"},
        {"bad", "{\"text\": \"unterminated\n[1, 2]\n"},
        {"empty", "{}\n\n   \n{\"text\": \"\"}"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        if (fuzz_seed(dir, seeds[i][0], seeds[i][1], strlen(seeds[i][1]))) return 1;
    return 0;
}
