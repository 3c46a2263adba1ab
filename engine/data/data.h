/*
 * data/data.h — token shard files, the deterministic batch loader and the
 * byte-level tokenizer.
 *
 * Shard file, version 1 (little-endian):
 *   offset  0  char[8]   magic "MSTOKENS"
 *           8  uint32    version (1)
 *          12  uint32    header bytes (64)
 *          16  uint32    vocabulary size
 *          20  uint32    reserved, 0
 *          24  uint64    token count n
 *          32  char[32]  tokenizer id, NUL-padded ("bytes" for the byte-level one)
 *          64  uint32[n] tokens, each < vocabulary size
 */
#ifndef MS_DATA_H
#define MS_DATA_H
#include <stdint.h>

#include "include/moonspeed.h"

#define MS_SHARD_MAGIC "MSTOKENS"
#define MS_SHARD_VERSION 1
#define MS_SHARD_HEADER 64

/* A shard mapped read-only into memory. */
typedef struct ms_shard {
    char path[512];
    ms_shard_info info;
    const uint32_t *tokens;  /* (n_tokens) */
    void *map;
    int64_t map_bytes;
} ms_shard;

/* Open and validate: header, size, every token < vocabulary. `expect_vocab`
 * and `expect_tokenizer` (NULL: any) are what the model needs. */
ms_status ms_shard_open(ms_shard *s, const char *path, int32_t expect_vocab, const char *expect_tokenizer);
void ms_shard_close(ms_shard *s);

/* Training batches: sequence j of step `step` starts at a position drawn
 * from (seed, step, j) alone, so a run resumes exactly from its step number
 * and the global batch is the same set of sequences whatever the world size
 * (each rank asks for its own range of j). Fills B sequences j = first.. . */
void ms_batch_train(const ms_shard *s, uint64_t seed, int64_t step, int64_t first, int B, int T,
                    int32_t *tokens, int32_t *targets);
/* Document starts for masked attention: doc_start[b, t] is the position of the
 * last `bos` at or before t in sequence b (0 when there is none), so a BOS
 * begins a new document and tokens before it are out of reach. */
void ms_batch_doc_starts(const int32_t *tokens, int B, int T, int32_t bos, int32_t *doc_start);
/* Evaluation batches: evenly spaced windows over the shard, the same every time. */
void ms_batch_eval(const ms_shard *s, int32_t batch, int32_t n_batches, int B, int T,
                   int32_t *tokens, int32_t *targets);

#endif
