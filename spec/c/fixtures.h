/* spec/c/fixtures.h — small token shards made on the fly in a temporary directory. */
#ifndef MS_SPEC_FIXTURES_H
#define MS_SPEC_FIXTURES_H
#include <stddef.h>

#include "include/moonspeed.h"

/* Make DIR/train.bin and DIR/val.bin (byte-level) from a short repeating text. */
int fixture_shards(char *dir, size_t len);
/* Point a config at them (the strings live until the next call). */
void fixture_paths(ms_config *c, const char *dir);
/* A small model on the fixture shards (dim 32, 2 layers, seq_len 32, batch 8 of 4). */
ms_config fixture_tiny(const char *dir);
/* Remove DIR and everything in it. */
void fixture_remove(const char *dir);
/* Write `n` raw bytes to DIR/name; returns the full path in a static buffer. */
const char *fixture_file(const char *dir, const char *name, const void *data, size_t n);
#endif
