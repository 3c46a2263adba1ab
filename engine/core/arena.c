/* core/arena.c — the layout pass over per-purpose arenas (see arena.h). */
#include "core/arena.h"

static int64_t align_up(int64_t n) { return (n + MS_ALIGN - 1) / MS_ALIGN * MS_ALIGN; }

void *ms_layout_take(ms_layout *l, int purpose, int64_t count, int64_t elem_bytes) {
    int64_t size = align_up(count * elem_bytes);
    l->bytes[purpose] += size;
    if (!l->arenas) return NULL;
    ms_arena *a = &l->arenas[purpose];
    /* The sizing pass made capacity exactly the sum of the takes: this cannot overflow
       unless the two passes diverged, which is a bug. */
    if (a->used + size > a->capacity) return NULL;
    void *p = a->base + a->used;
    a->used += size;
    return p;
}

void ms_memory_from_bytes(ms_memory *out, const int64_t b[MS_MEM_COUNT]) {
    out->params = b[MS_MEM_PARAMS];
    out->grads = b[MS_MEM_GRADS];
    out->master = b[MS_MEM_MASTER];
    out->optimizer = b[MS_MEM_OPTIMIZER];
    out->activations = b[MS_MEM_ACTIVATIONS];
    out->workspace = b[MS_MEM_WORKSPACE];
    out->data = b[MS_MEM_DATA];
    out->backend = b[MS_MEM_BACKEND];
    out->checkpoint = b[MS_MEM_CHECKPOINT];
    out->total = 0;
    for (int i = 0; i < MS_MEM_COUNT; i++) out->total += b[i];
}
