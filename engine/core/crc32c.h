/*
 * core/crc32c.h — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of checkpoint files. Incremental: start from 0, feed the bytes in
 * order, the result is the standard CRC-32C ("123456789" -> 0xE3069283).
 * Uses the SSE4.2 crc32 instruction where the build targets it.
 */
#ifndef MS_CORE_CRC32C_H
#define MS_CORE_CRC32C_H
#include <stddef.h>
#include <stdint.h>

uint32_t ms_crc32c(uint32_t crc, const void *data, size_t n);

#endif
