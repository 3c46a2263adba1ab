/* device/device.c — choosing a backend by kind, asking what the machine has,
 * and the op table that the backends' profiles share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "core/status.h"
#include "device/cuda.h"
#include "device/device.h"

#ifndef MS_HAVE_CUDA
static ms_status no_cuda(void) {
    return ms_fail(MS_ERR_INVALID, "device \"cuda\": this build has no CUDA backend (it was built without "
                                   "nvcc); use device = \"cpu\", or rebuild where the CUDA toolkit is installed");
}
#endif

static ms_status unknown(int32_t kind) {
    return ms_fail(MS_ERR_INVALID, "device kind %d is unknown; expected 0 (cpu) or 1 (cuda)", kind);
}

ms_status ms_device_init(ms_device *d, int32_t kind, int32_t precision, int32_t threads) {
    switch (kind) {
    case MS_DEVICE_CPU:
        ms_device_init_cpu(d, precision, threads);
        return MS_OK;
    case MS_DEVICE_CUDA:
#ifdef MS_HAVE_CUDA
        return ms_device_init_cuda(d, precision, threads);
#else
        return no_cuda();
#endif
    }
    return unknown(kind);
}

int ms_op_table_slot(ms_op_table *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->ops[i].name, name) == 0) return i;
    if (t->n == MS_OP_TABLE) return MS_OP_TABLE - 1;
    if (t->n == MS_OP_TABLE - 1) name = "(other ops)";
    snprintf(t->ops[t->n].name, MS_OP_NAME, "%s", name);
    return t->n++;
}

void ms_op_table_add(ms_op_table *t, int slot, double seconds) {
    t->ops[slot].seconds += seconds;
    t->ops[slot].calls++;
}

static int by_seconds(const void *a, const void *b) {
    double x = ((const ms_op_time *)a)->seconds, y = ((const ms_op_time *)b)->seconds;
    return (x < y) - (x > y);
}

int ms_op_table_take(ms_op_table *t, ms_op_time *out, int max) {
    qsort(t->ops, (size_t)t->n, sizeof t->ops[0], by_seconds);
    int n = t->n < max ? t->n : max;
    if (n > 0) memcpy(out, t->ops, (size_t)n * sizeof *out);
    return n;
}

/* A GPU stores bf16 in 2 bytes; everything else it stores in 4. */
static int64_t gpu_elem_bytes(const ms_device *d, int32_t dtype) {
    (void)d;
    return dtype == MS_BF16 ? 2 : 4;
}

ms_status ms_device_describe(ms_device *d, int32_t kind, int32_t precision) {
    switch (kind) {
    case MS_DEVICE_CPU:
        ms_device_init_cpu(d, precision, 0);
        return MS_OK;
    case MS_DEVICE_CUDA:
        *d = (ms_device){.name = "cuda", .kind = MS_DEVICE_CUDA, .bf16 = precision == MS_PRECISION_BF16,
                         .elem_bytes = gpu_elem_bytes, .scratch_bytes = ms_cuda_scratch_bytes};
        return MS_OK;
    }
    return unknown(kind);
}

#ifdef MS_HAVE_CUDA
/* This process's GPU: its local rank's, as the engine takes it. */
static ms_status query_cuda(ms_device_info *out) {
    ms_world w = {0};
    if (ms_world_from_env(&w) != MS_OK) return ms_fail_context(MS_ERR_INVALID, "which GPU is this process's");
    return ms_cuda_query(w.local_rank, out);
}
#endif

ms_status ms_device_query(int32_t kind, ms_device_info *out) {
    if (!out) return ms_fail(MS_ERR_INVALID, "ms_device_query: out is required");
    memset(out, 0, sizeof *out);
    out->kind = kind;
    switch (kind) {
    case MS_DEVICE_CPU:
        out->count = 1;
        strcpy(out->name, "cpu");
        return MS_OK;
    case MS_DEVICE_CUDA:
#ifdef MS_HAVE_CUDA
        return query_cuda(out);
#else
        return no_cuda();
#endif
    }
    return unknown(kind);
}
