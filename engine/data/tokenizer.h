/*
 * data/tokenizer.h — the tokenizers behind ms_tokenizer: Llama 3's byte-level
 * BPE and the byte-level one ("bytes").
 *
 * Byte-level BPE with tiktoken semantics:
 *   1. Pre-split: the text is cut into pieces by the Llama 3 regular expression
 *      (PCRE2, UTF + UCP, JIT). Invalid UTF-8 never reaches PCRE2: the text is
 *      validated first, valid runs are split by the regex, and each byte of an
 *      invalid sequence is a piece of its own (so it encodes to its byte token
 *      and decodes back to the same byte).
 *   2. A piece that is itself a token is emitted whole. Otherwise it starts as
 *      single bytes and the adjacent pair whose concatenation has the lowest
 *      rank is merged, leftmost first on ties, until no pair is a token.
 *   3. Special tokens (ids n_ranks..vocab_size-1, "<|begin_of_text|>" ...) are
 *      recognised in the text only under MS_ENCODE_SPECIALS; otherwise their
 *      names are ordinary text.
 * Decoding concatenates token bytes (special tokens give their names), so a
 * UTF-8 sequence split across tokens comes back whole.
 *
 * The vocabulary: token bytes in one blob with offsets, an open-addressing
 * hash table from bytes to rank (first 8 bytes inline), and a direct table
 * for 2-byte strings, the first candidates of every merge. The tokenizer is immutable after loading and
 * shared by threads; each thread encodes through its own ms_tok_ctx (PCRE2
 * match data, JIT stack, merge scratch).
 */
#ifndef MS_DATA_TOKENIZER_H
#define MS_DATA_TOKENIZER_H
#include <stdint.h>

#include "include/moonspeed.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum { MS_TOK_BYTES = 0, MS_TOK_BPE = 1 };

#define MS_LLAMA3_RANKS 128000
#define MS_LLAMA3_SPECIALS 256
#define MS_LLAMA3_SHA256 "82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55"
#define MS_LLAMA3_PATTERN                                                                           \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define MS_TOK_MAX_SPECIAL 64 /* longest special-token name, bytes */
#define MS_TOK_CACHE 4096     /* entries of a context's lookup cache (64 KiB) */

/* A hash-table slot: the first 8 bytes of the token inline, so most lookups
 * (tokens of up to 8 bytes) touch one cache line and no other memory. */
typedef struct ms_tok_slot {
    uint64_t head;            /* bytes 0..7, little-endian, zero-padded */
    uint32_t len;             /* 0 = empty */
    int32_t rank;
} ms_tok_slot;

struct ms_tokenizer {
    int kind;                 /* MS_TOK_BYTES or MS_TOK_BPE */
    char id[33];              /* what shards carry: "bytes", "llama3-82e9d319..." */
    char sha256[65];          /* of the ranks in tiktoken form ("" for bytes) */
    int32_t n_ranks;          /* mergeable tokens: ids 0..n_ranks-1 */
    int32_t vocab_size;       /* n_ranks + special tokens */
    int32_t bos, eos;
    uint8_t *blob;            /* token bytes (special tokens: their names) */
    uint32_t *off;            /* (vocab_size + 1): token i is blob[off[i] .. off[i+1]) */
    ms_tok_slot *slots;       /* (mask + 1) open-addressing table over the ranks' bytes */
    uint32_t mask;
    int32_t *pair_rank;       /* (65536): rank of each 2-byte string, or -1 */
    int32_t byte_rank[256];   /* rank of each single byte */
    pcre2_code *re;           /* the pre-split pattern */
    int jit;                  /* 1: re is JIT-compiled (else the interpreter runs it) */
};

/* Per-thread encoding state. */
typedef struct ms_tok_ctx {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *stack;
    ms_tok_slot *cache;       /* (MS_TOK_CACHE) recent lookups of up to 8 bytes, hits and misses */
    void *scratch;            /* merge work space, grown on demand */
    int64_t scratch_bytes;
} ms_tok_ctx;

ms_status ms_tok_ctx_init(ms_tok_ctx *c, const ms_tokenizer *t);
void ms_tok_ctx_free(ms_tok_ctx *c);

/* Encode text[0..n) into out (cap entries); *n_out = tokens the text needs
 * (those beyond cap are counted, not written). n tokens always suffice, plus
 * one each for MS_ENCODE_BOS / MS_ENCODE_EOS. */
ms_status ms_tok_encode(const ms_tokenizer *t, ms_tok_ctx *c, const uint8_t *text, int64_t n,
                        int32_t flags, uint32_t *out, int64_t cap, int64_t *n_out);

/* Rank of a byte string among the mergeable tokens, or -1. */
int32_t ms_tok_rank(const ms_tokenizer *t, const uint8_t *p, int64_t n);

/* Loading (bpe_load.c): fills a zeroed tokenizer from a file. */
ms_status ms_tok_load_file(ms_tokenizer *t, const char *path);
/* The vocabulary's tables once blob/off/n_ranks/vocab_size are set: hash
 * table, byte ranks, sha256, id, BOS/EOS, the compiled pattern. */
ms_status ms_tok_finish(ms_tokenizer *t, const char *path);

#endif
