/*
 * core/arena.h — bump allocators, one per memory purpose, and the layout pass
 * that sizes and carves them.
 *
 * The engine never allocates after create. Everything it will hold is
 * declared by one layout function that runs twice through ms_layout:
 *   1. sizing  (arenas == NULL): each take adds its aligned size to the total
 *      of its purpose and returns NULL — this IS the memory plan;
 *   2. carving (arenas set): each take returns the next slice of the arena
 *      reserved for its purpose with exactly the sized total.
 * Because both passes run the same code, the plan equals what is reserved.
 */
#ifndef MS_CORE_ARENA_H
#define MS_CORE_ARENA_H
#include <stddef.h>
#include <stdint.h>

#include "include/moonspeed.h"

/* Memory purposes, in the order of the fields of ms_memory. */
enum { MS_MEM_PARAMS, MS_MEM_GRADS, MS_MEM_MASTER, MS_MEM_OPTIMIZER,
       MS_MEM_ACTIVATIONS, MS_MEM_WORKSPACE, MS_MEM_DATA, MS_MEM_BACKEND, MS_MEM_CHECKPOINT, MS_MEM_COUNT };

#define MS_ALIGN 64

struct ms_device;

typedef struct ms_arena {
    uint8_t *base;
    int64_t capacity;
    int64_t used;
} ms_arena;

typedef struct ms_layout {
    int64_t bytes[MS_MEM_COUNT];  /* totals per purpose so far */
    ms_arena *arenas;             /* NULL while sizing */
} ms_layout;

/* Take count elements of elem_bytes each for a purpose (aligned to MS_ALIGN). */
void *ms_layout_take(ms_layout *l, int purpose, int64_t count, int64_t elem_bytes);

/* Sum per-purpose bytes into the public struct, total included. */
void ms_memory_from_bytes(ms_memory *out, const int64_t bytes[MS_MEM_COUNT]);

#endif
