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

/* ---- what the NCCL communicator (comm/nccl.c) needs of the device ---- */
/* The compute stream (a cudaStream_t), NULL before start(). */
void *ms_cuda_compute_stream(const ms_device *d);
/* The GPU the device runs on: 0 unless ms_cuda_use_gpu chose another. */
int32_t ms_cuda_gpu(const ms_device *d);
/* Run on GPU `gpu` (of those this process sees); between init and start():
   the rank of local rank l takes GPU l, so that no two ranks share one. */
ms_status ms_cuda_use_gpu(ms_device *d, int32_t gpu);
#endif
