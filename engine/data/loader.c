/* data/loader.c — deterministic training and evaluation batches from a shard. */
#include "core/rng.h"
#include "data/data.h"

static void window(const ms_shard *s, int64_t start, int T, int32_t *tokens, int32_t *targets) {
    const uint32_t *src = s->tokens + start;
    for (int t = 0; t < T; t++) {
        tokens[t] = (int32_t)src[t];
        targets[t] = (int32_t)src[t + 1];
    }
}

void ms_batch_train(const ms_shard *s, uint64_t seed, int64_t step, int64_t first, int B, int T,
                    int32_t *tokens, int32_t *targets) {
    uint64_t key = ms_rng_key(seed, MS_STREAM_DATA);
    uint64_t starts = (uint64_t)(s->info.n_tokens - T); /* windows need T + 1 tokens */
    for (int i = 0; i < B; i++) {
        int64_t start = (int64_t)ms_rng_below(key, (uint64_t)step, (uint64_t)(first + i), starts);
        window(s, start, T, tokens + (int64_t)i * T, targets + (int64_t)i * T);
    }
}

void ms_batch_doc_starts(const int32_t *tokens, int B, int T, int32_t bos, int32_t *doc_start) {
    for (int b = 0; b < B; b++) {
        int32_t start = 0;
        for (int t = 0; t < T; t++) {
            if (tokens[(int64_t)b * T + t] == bos) start = t;
            doc_start[(int64_t)b * T + t] = start;
        }
    }
}

void ms_batch_eval(const ms_shard *s, int32_t batch, int32_t n_batches, int B, int T,
                   int32_t *tokens, int32_t *targets) {
    int64_t total = (int64_t)n_batches * B, last = s->info.n_tokens - T - 1;
    for (int i = 0; i < B; i++) {
        int64_t j = (int64_t)batch * B + i;
        int64_t start = total > 1 ? (int64_t)((double)j * (double)last / (double)(total - 1)) : 0;
        window(s, start, T, tokens + (int64_t)i * T, targets + (int64_t)i * T);
    }
}
