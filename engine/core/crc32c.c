/* core/crc32c.c — CRC-32C with the SSE4.2 instruction, or a table (see crc32c.h). */
#include <string.h>

#include "core/crc32c.h"

#ifdef __SSE4_2__
#include <nmmintrin.h>

static uint32_t update(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n > 0; p++, n--) c32 = _mm_crc32_u8(c32, *p);
    return c32;
}
#else
static uint32_t table[256];

__attribute__((constructor)) static void fill_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        table[i] = c;
    }
}

static uint32_t update(uint32_t crc, const uint8_t *p, size_t n) {
    for (; n > 0; p++, n--) crc = table[(crc ^ *p) & 0xFF] ^ (crc >> 8);
    return crc;
}
#endif

uint32_t ms_crc32c(uint32_t crc, const void *data, size_t n) {
    return ~update(~crc, data, n);
}
