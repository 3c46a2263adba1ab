/*
 * core/sha256.h — SHA-256 (FIPS 180-4), incremental.
 *
 *   ms_sha256 h; ms_sha256_init(&h);
 *   ms_sha256_update(&h, data, n);  ... as often as needed
 *   uint8_t digest[32]; ms_sha256_final(&h, digest);
 *
 * Used to name vocabularies: a tokenizer's id is derived from the SHA-256 of
 * its ranks written in tiktoken form, which for Llama 3 is the published hash
 * of Meta's tokenizer.model.
 */
#ifndef MS_CORE_SHA256_H
#define MS_CORE_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct ms_sha256 {
    uint32_t state[8];
    uint64_t bytes;        /* message length so far */
    uint8_t block[64];     /* pending partial block */
    uint32_t fill;         /* bytes in block */
} ms_sha256;

void ms_sha256_init(ms_sha256 *h);
void ms_sha256_update(ms_sha256 *h, const void *data, size_t n);
void ms_sha256_final(ms_sha256 *h, uint8_t digest[32]);
/* Lower-case hex of a digest: 64 characters plus NUL. */
void ms_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
