/* data/loader.c — deterministic training and evaluation batches from a dataset. */
#include "core/rng.h"
#include "data/data.h"

/* Copy window w of the dataset: T inputs and the T next tokens. */
static void window(const ms_dataset *d, int64_t w, int T, int32_t *tokens, int32_t *targets) {
    int lo = 0, hi = d->n - 1; /* the shard with first[i] <= w < first[i + 1] */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (d->first[mid] <= w) lo = mid;
        else hi = mid - 1;
    }
    const uint32_t *src = d->shards[lo].tokens + (w - d->first[lo]);
    for (int t = 0; t < T; t++) {
        tokens[t] = (int32_t)src[t];
        targets[t] = (int32_t)src[t + 1];
    }
}

void ms_batch_train(const ms_dataset *d, uint64_t seed, int64_t step, int64_t first, int B, int T,
                    int32_t *tokens, int32_t *targets) {
    uint64_t key = ms_rng_key(seed, MS_STREAM_DATA);
    for (int i = 0; i < B; i++) {
        int64_t w = (int64_t)ms_rng_below(key, (uint64_t)step, (uint64_t)(first + i), (uint64_t)d->windows);
        window(d, w, T, tokens + (int64_t)i * T, targets + (int64_t)i * T);
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

void ms_batch_eval(const ms_dataset *d, int32_t batch, int32_t n_batches, int B, int T,
                   int32_t *tokens, int32_t *targets) {
    int64_t total = (int64_t)n_batches * B, last = d->windows - 1;
    for (int i = 0; i < B; i++) {
        int64_t j = (int64_t)batch * B + i;
        int64_t w = total > 1 ? (int64_t)((double)j * (double)last / (double)(total - 1)) : 0;
        window(d, w, T, tokens + (int64_t)i * T, targets + (int64_t)i * T);
    }
}
