/*
 * device/cuda.h — the CUDA backend (cuda.c over kernels/cuda), built when the
 * Makefile finds nvcc (MS_HAVE_CUDA).
 *
 * The op entries of the interface return nothing, so the backend latches the
 * first CUDA or cuBLASLt failure: it is set as the thread's last error
 * (ms_fail) when it happens, later ops become no-ops, and ms_cuda_status
 * returns it (MS_OK while nothing failed). sync() also checks the stream.
 */
#ifndef MS_DEVICE_CUDA_H
#define MS_DEVICE_CUDA_H
#include "device/device.h"

/* Describe the CUDA backend; fails with a clear message when no CUDA device is usable. */
ms_status ms_device_init_cuda(ms_device *d, int32_t precision, int32_t threads);
/* The GPUs of this machine (ms_device_query); fails saying why when there are none. */
ms_status ms_cuda_query(ms_device_info *out);
/* The first failure latched by the backend's ops, or MS_OK. */
ms_status ms_cuda_status(const ms_device *d);
#endif
