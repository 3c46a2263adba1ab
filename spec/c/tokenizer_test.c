/*
 * spec/c/tokenizer_test.c — tokenizers without the downloaded vocabulary:
 * SHA-256 known answers, the byte-level tokenizer, BPE merge order on a
 * synthetic 128,000-token vocabulary written in both file forms (same ids,
 * same tokenizer id), and bad tokenizer files with their exact messages.
 * The real Llama 3 vocabulary is checked in spec/lua/tokenizer_spec.lua.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/sha256.h"
#include "include/moonspeed.h"

/* --- helpers ---------------------------------------------------------------- */

static int tmpdir(char *dir, size_t len) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, len, "%s/ms-tok-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(dir) ? 0 : 1;
}

static void rmtree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static const char *path_in(const char *dir, const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64(const uint8_t *p, int n, char *out) {
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

/* The synthetic vocabulary: the 256 bytes, then "ab", "bc", "abc", "cd",
 * "abcd" is NOT a token, " x", then fillers "\xff" + 4 bytes of counter that
 * no valid UTF-8 text can produce. Token r's bytes into out; returns length. */
#define SYN_EXTRA 5
static int syn_token(int r, uint8_t *out) {
    static const char *extra[SYN_EXTRA] = {"ab", "bc", "abc", "cd", " x"};
    if (r < 256) return out[0] = (uint8_t)r, 1;
    if (r < 256 + SYN_EXTRA) return (int)(memcpy(out, extra[r - 256], strlen(extra[r - 256])), strlen(extra[r - 256]));
    uint32_t c = (uint32_t)r;
    out[0] = 0xff, out[1] = (uint8_t)(c >> 24), out[2] = (uint8_t)(c >> 16), out[3] = (uint8_t)(c >> 8), out[4] = (uint8_t)c;
    return 5;
}

/* Writes the synthetic vocabulary in tiktoken form; `bad_line` (1-based, 0 =
 * none) is replaced by `bad`; `lines` ranks are written. */
static void write_tiktoken(const char *path, int lines, int bad_line, const char *bad) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    for (int r = 0; r < lines; r++) {
        if (r + 1 == bad_line) {
            fputs(bad, f);
            continue;
        }
        uint8_t t[8];
        char e[16];
        b64(t, syn_token(r, t), e);
        fprintf(f, "%s %d\n", e, r);
    }
    fclose(f);
}

/* GPT-2's byte-to-unicode form of one byte, as UTF-8 (JSON-escaped when needed). */
static int gpt2_char(uint8_t b, char *out) {
    int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    uint32_t cp = b;
    if (!printable) {
        int k = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174))) k++;
        cp = 256 + (uint32_t)k;
    }
    if (cp == '"' || cp == '\\') return out[0] = '\\', out[1] = (char)cp, 2;
    if (cp < 0x80) return out[0] = (char)cp, 1;
    return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 63)), 2;
}

static const char *LLAMA3_PATTERN_JSON =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|"
    "\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";

/* The synthetic vocabulary as a Hugging Face tokenizer.json. */
static void write_json(const char *path, const char *type, int n_vocab, const char *pattern, int n_added) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fprintf(f, "{\n  \"version\": \"1.0\",\n  \"added_tokens\": [\n");
    for (int i = 0; i < n_added; i++) {
        char name[64];
        if (i == 0) snprintf(name, sizeof name, "<|begin_of_text|>");
        else if (i == 1) snprintf(name, sizeof name, "<|end_of_text|>");
        else snprintf(name, sizeof name, "<|reserved_special_token_%d|>", i);
        fprintf(f, "    {\"id\": %d, \"content\": \"%s\", \"special\": true}%s\n", 128000 + i, name,
                i + 1 < n_added ? "," : "");
    }
    fprintf(f, "  ],\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
               "\"pattern\": {\"Regex\": \"%s\"}, \"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\"}]},\n",
            pattern);
    fprintf(f, "  \"model\": {\n    \"type\": \"%s\",\n    \"ignore_merges\": true,\n    \"vocab\": {\n", type);
    for (int r = n_vocab - 1; r >= 0; r--) { /* any order: ids place them */
        uint8_t t[8];
        int n = syn_token(r, t);
        char key[64];
        int w = 0;
        for (int i = 0; i < n; i++) w += gpt2_char(t[i], key + w);
        key[w] = 0;
        fprintf(f, "      \"%s\": %d%s\n", key, r, r > 0 ? "," : "");
    }
    fprintf(f, "    },\n    \"merges\": [\"a b\", \"b c\"]\n  }\n}\n");
    fclose(f);
}

static int encode(const ms_tokenizer *t, const char *text, int32_t flags, int32_t *out, int cap) {
    int64_t n = -1;
    if (ms_tokenizer_encode(t, text, (int64_t)strlen(text), flags, out, cap, &n) != MS_OK) return -1;
    return (int)n;
}

/* --- SHA-256 ------------------------------------------------------------------ */

static void sha_hex(const void *p, size_t n, size_t step, char hex[65]) {
    ms_sha256 h;
    ms_sha256_init(&h);
    for (size_t i = 0; i < n; i += step) ms_sha256_update(&h, (const uint8_t *)p + i, n - i < step ? n - i : step);
    uint8_t d[32];
    ms_sha256_final(&h, d);
    ms_sha256_hex(d, hex);
}

TEST(sha256_known_answers) {
    char hex[65];
    sha_hex("", 0, 1, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    sha_hex("abc", 3, 1, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t step = 1; step <= 64; step *= 4) {
        sha_hex(two, strlen(two), step, hex);
        CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    }
    char *million = malloc(1000000);
    memset(million, 'a', 1000000);
    sha_hex(million, 1000000, 4093, hex);
    free(million);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    return 0;
}

/* --- the byte-level tokenizer ------------------------------------------------- */

TEST(tokenizer_bytes_encodes_and_decodes) {
    ms_tokenizer *t = NULL;
    CHECK_OK(ms_tokenizer_load("bytes", &t));
    CHECK(strcmp(ms_tokenizer_id(t), "bytes") == 0);
    CHECK(ms_tokenizer_vocab_size(t) == 258 && ms_tokenizer_bos(t) == 256 && ms_tokenizer_eos(t) == 257);
    int32_t ids[64];
    CHECK(encode(t, "hi\xff", MS_ENCODE_BOS | MS_ENCODE_EOS, ids, 64) == 5);
    CHECK(ids[0] == 256 && ids[1] == 'h' && ids[2] == 'i' && ids[3] == 255 && ids[4] == 257);
    CHECK(encode(t, "a<|end_of_text|>b", 0, ids, 64) == 17);
    CHECK(encode(t, "a<|end_of_text|>b", MS_ENCODE_SPECIALS, ids, 64) == 3 && ids[1] == 257);
    /* a short buffer: the count it needs, nothing written past cap */
    ids[2] = -7;
    CHECK(encode(t, "hello", 0, ids, 2) == 5 && ids[2] == -7);
    char out[64];
    int64_t n = 0;
    int32_t back[] = {256, 'o', 'k', 257};
    CHECK_OK(ms_tokenizer_decode(t, back, 4, out, sizeof out, &n));
    CHECK(n == 2 + 17 + 15 && memcmp(out, "<|begin_of_text|>ok<|end_of_text|>", (size_t)n) == 0);
    int32_t bad[] = {1, 2, 258};
    CHECK_FAILS(ms_tokenizer_decode(t, bad, 3, out, sizeof out, &n), MS_ERR_INVALID,
                "token 2 is 258, outside the vocabulary of tokenizer bytes (0..257)");
    CHECK_FAILS(ms_tokenizer_encode(t, "x", 1, 8, ids, 64, &n), MS_ERR_INVALID, "unknown flags 0x8");
    ms_tokenizer_free(t);
    ms_tokenizer_free(NULL);
    return 0;
}

/* --- BPE on the synthetic vocabulary ------------------------------------------ */

TEST(tokenizer_bpe_merges_by_rank_in_both_forms) {
    char dir[256];
    CHECK(tmpdir(dir, sizeof dir) == 0);
    write_tiktoken(path_in(dir, "tokenizer.model"), 128000, 0, NULL);
    write_json(path_in(dir, "tokenizer.json"), "BPE", 128000, LLAMA3_PATTERN_JSON, 256);
    ms_tokenizer *a = NULL, *b = NULL;
    CHECK_OK(ms_tokenizer_load(path_in(dir, "tokenizer.model"), &a));
    CHECK_OK(ms_tokenizer_load(path_in(dir, "tokenizer.json"), &b));
    CHECK_MSG(strcmp(ms_tokenizer_id(a), ms_tokenizer_id(b)) == 0, "%s vs %s", ms_tokenizer_id(a), ms_tokenizer_id(b));
    CHECK(strncmp(ms_tokenizer_id(a), "bpe-", 4) == 0 && strlen(ms_tokenizer_id(a)) == 31);
    CHECK(ms_tokenizer_vocab_size(a) == 128256 && ms_tokenizer_bos(a) == 128000 && ms_tokenizer_eos(a) == 128001);
    CHECK(ms_tokenizer_special(b, "<|reserved_special_token_9|>") == 128009);
    const ms_tokenizer *both[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        const ms_tokenizer *t = both[k];
        int32_t ids[512];
        /* a piece that is a token is emitted whole */
        CHECK(encode(t, "abc", 0, ids, 512) == 1 && ids[0] == 258);
        /* "abcd": ab (256) < bc (257) merges first, then abc (258); cd never forms */
        CHECK(encode(t, "abcd", 0, ids, 512) == 2 && ids[0] == 258 && ids[1] == 'd');
        /* "bcd": bc first; "cd" has a larger rank and loses the 'c' */
        CHECK(encode(t, "bcd", 0, ids, 512) == 2 && ids[0] == 257 && ids[1] == 'd');
        /* " x" is one piece of the pre-split and one token */
        CHECK(encode(t, "ab x", 0, ids, 512) == 2 && ids[0] == 256 && ids[1] == 260);
        /* long pieces take the heap path: the same merges, leftmost first */
        for (int reps = 20; reps <= 120; reps += 100) { /* 80 bytes and 480 bytes */
            char text[512];
            for (int i = 0; i < reps; i++) memcpy(text + 4 * i, "abcd", 4);
            text[4 * reps] = 0;
            CHECK(encode(t, text, 0, ids, 512) == 2 * reps);
            for (int i = 0; i < reps; i++) CHECK(ids[2 * i] == 258 && ids[2 * i + 1] == 'd');
            /* "ab" repeated: pairs ab (256) everywhere, leftmost wins, "ba" never */
            for (int i = 0; i < reps; i++) memcpy(text + 2 * i, "ab", 2);
            text[2 * reps] = 0;
            CHECK(encode(t, text, 0, ids, 512) == reps);
            for (int i = 0; i < reps; i++) CHECK(ids[i] == 256);
        }
        /* invalid UTF-8 goes byte by byte and comes back */
        const char *raw = "ab\xff\xfe" "cd\xc3";
        int n = encode(t, raw, 0, ids, 512);
        CHECK(n == 5 && ids[0] == 256 && ids[1] == 0xff && ids[2] == 0xfe && ids[3] == 259 && ids[4] == 0xc3);
        char out[64];
        int64_t nb = 0;
        CHECK_OK(ms_tokenizer_decode(t, ids, n, out, sizeof out, &nb));
        CHECK(nb == (int64_t)strlen(raw) && memcmp(out, raw, (size_t)nb) == 0);
    }
    ms_tokenizer_free(a);
    ms_tokenizer_free(b);
    rmtree(dir);
    return 0;
}

/* --- bad files ---------------------------------------------------------------- */

static ms_status load(const char *path) {
    ms_tokenizer *t = NULL;
    ms_status st = ms_tokenizer_load(path, &t);
    ms_tokenizer_free(t);
    return st;
}

TEST(tokenizer_bad_tiktoken_files) {
    char dir[256];
    CHECK(tmpdir(dir, sizeof dir) == 0);
    char want[600];
    const char *p = path_in(dir, "missing.model");
    snprintf(want, sizeof want, "tokenizer %s: No such file or directory; run `make data-llama3`", p);
    CHECK_FAILS(load(p), MS_ERR_IO, want);

    p = path_in(dir, "empty.model");
    write_text(p, "");
    snprintf(want, sizeof want, "tokenizer %s: the file is empty; expected Meta's tokenizer.model or Hugging "
             "Face's tokenizer.json", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "short.model");
    write_tiktoken(p, 3000, 0, NULL);
    snprintf(want, sizeof want, "tokenizer %s: 3000 ranks; Llama 3's tokenizer.model has 128000 — the file is "
             "truncated or belongs to another model", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "cut.model");
    write_tiktoken(p, 128000, 128000, "IQ");
    snprintf(want, sizeof want, "tokenizer %s: line 128000 does not end with a newline; the file is truncated", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "b64.model");
    write_tiktoken(p, 128000, 7, "no*base64 6\n");
    snprintf(want, sizeof want, "tokenizer %s line 7: \"no*base64\" is not base64 of a token; the file is corrupt", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "rank.model");
    write_tiktoken(p, 128000, 9, "CA== 8x\n");
    snprintf(want, sizeof want, "tokenizer %s line 9: the rank \"8x\" is not a whole number; the file is corrupt", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "dup.model");
    write_tiktoken(p, 128000, 11, "Cg== 3\n");
    snprintf(want, sizeof want, "tokenizer %s line 11: rank 3 is a duplicate; ranks must be 0..127999, each once", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "range.model");
    write_tiktoken(p, 128000, 11, "Cg== 128000\n");
    snprintf(want, sizeof want, "tokenizer %s line 11: rank 128000 is out of range", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "same.model");
    write_tiktoken(p, 128000, 300, "YWI= 299\n"); /* "ab" again */
    snprintf(want, sizeof want, "tokenizer %s: tokens 256 and 299 have the same bytes", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "sentencepiece.model");
    {
        FILE *f = fopen(p, "wb"); /* 128000 lines of protobuf-like bytes, no spaces */
        for (int i = 0; i < 128000; i++) fputs("\x08\x12\x1a\x01\x02\n", f);
        fclose(f);
    }
    snprintf(want, sizeof want, "tokenizer %s line 1: no space; each line must be `base64 rank` (a tiktoken "
             "tokenizer.model; a SentencePiece model of Llama 1/2 is not this format)", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);
    rmtree(dir);
    return 0;
}

TEST(tokenizer_bad_json_files) {
    char dir[256];
    CHECK(tmpdir(dir, sizeof dir) == 0);
    char want[700];
    const char *p = path_in(dir, "unigram.json");
    write_json(p, "Unigram", 10, LLAMA3_PATTERN_JSON, 256);
    snprintf(want, sizeof want, "tokenizer %s: model.type is \"Unigram\"; moonspeed reads byte-level BPE tokenizers "
             "(model.type \"BPE\") of the Llama 3 family", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "small.json");
    write_json(p, "BPE", 3000, LLAMA3_PATTERN_JSON, 256);
    snprintf(want, sizeof want, "tokenizer %s: model.vocab has 3000 entries; Llama 3's has 128000 — the file is "
             "truncated or belongs to another model", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "pattern.json");
    write_json(p, "BPE", 128000, "\\\\w+", 256);
    snprintf(want, sizeof want, "tokenizer %s: the pre-tokenizer's Split pattern is \"\\w+\"; moonspeed splits "
             "with Llama 3's pattern, so this tokenizer would give other tokens", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "added.json");
    write_json(p, "BPE", 128000, LLAMA3_PATTERN_JSON, 12);
    snprintf(want, sizeof want, "tokenizer %s: 12 added_tokens; Llama 3 has 256 special tokens (ids 128000..128255)", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "nomodel.json");
    write_text(p, "{\"version\": \"1.0\", \"added_tokens\": []}\n");
    snprintf(want, sizeof want, "tokenizer %s: no \"model\" object; this is not a Hugging Face tokenizer.json", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "sentencepiece.json");
    write_text(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<unk>\": 0, \"\xe2\x96\x81the\": 1}}}\n");
    snprintf(want, sizeof want, "tokenizer %s line 1: model.vocab key \"\xe2\x96\x81the\" has a character outside "
             "GPT-2's byte-to-unicode alphabet; this is not a byte-level BPE vocabulary like Llama 3's", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);

    p = path_in(dir, "truncated.json");
    write_text(p, "{\n  \"model\": {\n    \"type\": \"BPE\",\n    \"vocab\": {\"a\": 0,");
    snprintf(want, sizeof want, "tokenizer %s line 5 column 1: did not find expected node content; the file is "
             "not valid JSON (truncated or corrupt)", p);
    CHECK_FAILS(load(p), MS_ERR_FORMAT, want);
    rmtree(dir);
    return 0;
}
