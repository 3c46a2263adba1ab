/*
 * comm/fabric.h — what the communicator implementations share (internal).
 */
#ifndef MS_COMM_FABRIC_H
#define MS_COMM_FABRIC_H
#include <stdint.h>
#include <string.h>

#include "comm/comm.h"

/* The fabric communicator of world w (world >= 2): rendezvous, then libfabric (fabric.c). */
ms_status ms_fabric_create(const ms_world *w, const char *provider, int32_t timeout_ms, ms_comm **out);

/* "all_gather", "reduce_scatter", ... */
const char *ms_comm_kind_name(int kind);

/* Checks the arguments every implementation checks (single.c). */
ms_status ms_comm_check(const ms_comm *c, int kind, const void *send, const void *recv, int64_t count,
                        int32_t dtype, ms_comm_req **req);

/* Latches a communicator's failure: formats it into failure (len bytes), sets
 * *failed, makes it the thread's error and returns st (single.c). */
ms_status ms_comm_latch(char *failure, size_t len, int *failed, ms_status st, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static inline int64_t ms_comm_elem_size(int32_t dtype) { return dtype == MS_BF16 ? 2 : 4; }

/* bf16 stored as uint16: widen exactly; narrow with round to nearest even (NaN kept, quiet). */
static inline float ms_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t ms_f32_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u | 0x00400000u) >> 16);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

#endif
