/*
 * spec/fuzz/vocab.h — a synthetic Llama-3-sized vocabulary in both file forms,
 * for the tokenizer targets: the base their patch inputs edit (fuzz.h), made
 * here so no third-party vocabulary is needed.
 *
 * Ranks 0..255 are the bytes, 256..65791 every pair of bytes (so encoding real
 * text merges), the rest three-byte tokens 0xf8 + a counter; the 256 special
 * tokens are Llama 3's names.
 */
#ifndef MS_SPEC_FUZZ_VOCAB_H
#define MS_SPEC_FUZZ_VOCAB_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "fuzz.h"

static inline int vocab_token(int r, uint8_t *out) {
    if (r < 256) return out[0] = (uint8_t)r, 1;
    if (r < 256 + 65536) return out[0] = (uint8_t)(r - 256), out[1] = (uint8_t)((r - 256) >> 8), 2;
    int c = r - 256 - 65536;
    return out[0] = 0xf8, out[1] = (uint8_t)c, out[2] = (uint8_t)(c >> 8), 3;
}

static inline void vocab_b64(const uint8_t *p, int n, char *out) {
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int w = 0;
    for (int i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        out[w++] = B64[x >> 18];
        out[w++] = B64[(x >> 12) & 63];
        out[w++] = i + 1 < n ? B64[(x >> 6) & 63] : '=';
        out[w++] = i + 2 < n ? B64[x & 63] : '=';
    }
    out[w] = 0;
}

/* tokenizer.model (tiktoken form): `base64 rank` per line. */
static inline uint8_t *vocab_tiktoken(size_t *n) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, n);
    for (int r = 0; r < MS_LLAMA3_RANKS; r++) {
        uint8_t t[4];
        char e[8];
        vocab_b64(t, vocab_token(r, t), e);
        fprintf(f, "%s %d\n", e, r);
    }
    fclose(f);
    return (uint8_t *)buf;
}

/* GPT-2's byte-to-unicode form of one byte, as JSON string content. */
static inline void vocab_gpt2(FILE *f, uint8_t b) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    unsigned cp = b;
    if (!printable) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174))) k++;
        cp = 256u + (unsigned)k;
    }
    if (cp == '"' || cp == '\\') fprintf(f, "\\%c", (char)cp);
    else if (cp < 0x80) fputc((int)cp, f);
    else fprintf(f, "%c%c", (char)(0xc0 | cp >> 6), (char)(0x80 | (cp & 63)));
}

static inline void vocab_special(int i, char *out, size_t cap) {
    static const char *named[10] = {"<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, NULL, NULL,
                                    "<|start_header_id|>", "<|end_header_id|>", NULL, "<|eot_id|>"};
    if (i < 10 && named[i]) snprintf(out, cap, "%s", named[i]);
    else snprintf(out, cap, "<|reserved_special_token_%d|>", i < 6 ? i - 2 : i == 8 ? 4 : i - 5);
}

/* tokenizer.json (Hugging Face form). */
static inline uint8_t *vocab_json(size_t *n) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, n);
    fprintf(f, "{\n  \"version\": \"1.0\",\n  \"added_tokens\": [\n");
    for (int i = 0; i < MS_LLAMA3_SPECIALS; i++) {
        char name[64];
        vocab_special(i, name, sizeof name);
        fprintf(f, "    {\"id\": %d, \"content\": \"%s\", \"special\": true}%s\n", MS_LLAMA3_RANKS + i, name,
                i + 1 < MS_LLAMA3_SPECIALS ? "," : "");
    }
    fprintf(f, "  ],\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
               "\"pattern\": {\"Regex\": \"");
    for (const char *p = MS_LLAMA3_PATTERN; *p; p++) {
        if (*p == '\\' || *p == '"') fputc('\\', f);
        fputc(*p, f);
    }
    fprintf(f, "\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\"}]},\n");
    fprintf(f, "  \"model\": {\n    \"type\": \"BPE\",\n    \"ignore_merges\": true,\n    \"vocab\": {\n");
    for (int r = 0; r < MS_LLAMA3_RANKS; r++) {
        uint8_t t[4];
        int k = vocab_token(r, t);
        fputc('"', f);
        for (int i = 0; i < k; i++) vocab_gpt2(f, t[i]);
        fprintf(f, "\": %d%s\n", r, r + 1 < MS_LLAMA3_RANKS ? "," : "");
    }
    fprintf(f, "    },\n    \"merges\": []\n  }\n}\n");
    fclose(f);
    return (uint8_t *)buf;
}

/* Loads the input (a file, or a patch of base) as a tokenizer; when it loads,
 * encodes and decodes a little text with it. */
static inline void vocab_exercise(const char *name, const uint8_t *base, size_t n_base, const uint8_t *data, size_t n) {
    size_t len = 0;
    uint8_t *patched = fuzz_patch(base, n_base, data, n, &len);
    const char *path = patched ? fuzz_file(name, patched, len) : fuzz_file(name, data, n);
    free(patched);
    ms_tokenizer *t = NULL;
    if (ms_tokenizer_load(path, &t) != MS_OK) return;
    static const char text[] = "Hello, world! 1234 \xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 <|eot_id|>\n\n\xff\xfe  x";
    int32_t ids[sizeof text + 2];
    int64_t n_ids = 0, n_bytes = 0;
    int flags = MS_ENCODE_BOS | MS_ENCODE_EOS | MS_ENCODE_SPECIALS;
    if (ms_tokenizer_encode(t, text, sizeof text - 1, flags, ids, (int64_t)(sizeof ids / sizeof ids[0]), &n_ids) !=
        MS_OK)
        __builtin_trap(); /* a loaded tokenizer encodes any text */
    char back[4096];
    if (ms_tokenizer_decode(t, ids, n_ids, back, sizeof back, &n_bytes) != MS_OK) __builtin_trap();
    int32_t every[64];
    for (int i = 0; i < 64; i++) every[i] = (int32_t)((uint32_t)i * 2654435761u % (uint32_t)ms_tokenizer_vocab_size(t));
    (void)ms_tokenizer_decode(t, every, 64, back, sizeof back, &n_bytes);
    ms_tokenizer_free(t);
}
#endif
