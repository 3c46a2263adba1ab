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

/* A dataset: the shards a path names — one file, or a glob pattern such as
 * "data/corpus/train-*.bin" (matches sorted by name) — read as one sequence of
 * windows of T + 1 tokens: shard i holds windows [first[i], first[i + 1]).
 * A window never crosses from one shard into the next. */
typedef struct ms_dataset {
    int32_t n;
    ms_shard *shards;   /* (n) */
    int64_t *first;     /* (n + 1) */
    int64_t windows;    /* in all */
    int64_t tokens;     /* in all */
} ms_dataset;

/* Open every shard of `path` (checked as ms_shard_open does) for windows of T + 1 tokens. */
ms_status ms_dataset_open(ms_dataset *d, const char *path, int32_t expect_vocab, const char *expect_tokenizer,
                          int T);
void ms_dataset_close(ms_dataset *d);

/* Training batches: sequence j of step `step` is window number
 * draw(seed, step, j) alone, so a run resumes exactly from its step number
 * and the global batch is the same set of sequences whatever the world size
 * (each rank asks for its own range of j). Fills B sequences j = first.. . */
void ms_batch_train(const ms_dataset *d, uint64_t seed, int64_t step, int64_t first, int B, int T,
                    int32_t *tokens, int32_t *targets);
void ms_batch_doc_starts(const int32_t *tokens, int B, int T, int32_t bos, int32_t *doc_start);
/* Evaluation batches: evenly spaced windows over the dataset, the same every time. */
void ms_batch_eval(const ms_dataset *d, int32_t batch, int32_t n_batches, int B, int T,
                   int32_t *tokens, int32_t *targets);

#endif
