/*
 * spec/fuzz/tokenizer_json.c — Hugging Face's tokenizer.json (engine/data/bpe_load.c,
 * read through libyaml): raw documents, and patches of a synthetic Llama-3-sized
 * tokenizer.json (vocab.h) that reach the vocabulary checks and encoding.
 */
#include "vocab.h"

static uint8_t *base;
static size_t n_base;

int fuzz_setup(void) {
    base = vocab_json(&n_base);
    return base ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    vocab_exercise("tokenizer.json", base, n_base, data, n);
    return 0;
}

int fuzz_seeds(const char *dir) {
    static const char *raw[] = {
        "{}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0120x\": 2}, \"merges\": []}}",
        "{\"added_tokens\": [{\"id\": 128000, \"content\": \"<|begin_of_text|>\", \"special\": true}], "
        "\"model\": {\"type\": \"WordPiece\"}}",
        "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
        "\"pattern\": {\"Regex\": \"\\\\s+\"}}]}, \"model\": {\"type\": \"BPE\", \"vocab\": {}}}",
        "{\"model\": {\"vocab\": [1, 2]}, \"added_tokens\": {}}",
        "\xef\xbb\xbf {\"model\": 5}",
        "{\"a\": [1, {\"b\": null}], \"model\": {\"type\": \"BPE\", \"vocab\": {\"\\u00ff\": 99999999999}}}",
    };
    char name[32];
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        snprintf(name, sizeof name, "raw-%zu", i);
        if (fuzz_seed(dir, name, raw[i], strlen(raw[i]))) return 1;
    }
    /* patches: none (the valid base), a changed id, a changed special, a cut */
    uint8_t p[256];
    size_t len;
    struct { uint32_t at; const char *bytes; } edits[] = {
        {0, NULL}, {80, "128001"}, {100, "<|foo|>"}, {1000000, ""}, {30000, "\"x\": 5,"},
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
