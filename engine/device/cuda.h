/*
 * device/cuda.h — the CUDA backend (cuda.c over kernels/cuda), built when the
 * Makefile finds nvcc (MS_HAVE_CUDA); the sizing of its scratch is built
 * always (cuda_scratch.c).
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
/* The GPUs of this machine and the one local rank local_rank takes (GPU
 * local_rank % count; ms_device_query); fails saying why when there are none.
 * The calling thread's current GPU stays as it was, and no other GPU is touched. */
ms_status ms_cuda_query(int32_t local_rank, ms_device_info *out);
/* The backend's scratch (scratch_bytes of the interface): cuBLASLt's
 * workspace, the fp64 partials and result of the fixed-order sums (sumsq, the
 * loss), then one region that the ops needing scratch for the length of a
 * call share (attention's delta, the per-row losses, the deterministic
 * reductions of embedding and RMSNorm backward: the largest of them).
 * Plain C in cuda_scratch.c, built with or without nvcc. */
#define MS_CUDA_WORKSPACE_BYTES ((int64_t)32 << 20)
#define MS_CUDA_SUM_BLOCKS 256
int64_t ms_cuda_sums_bytes(void);   /* (MS_CUDA_SUM_BLOCKS + 1) doubles, aligned */
int64_t ms_cuda_op_scratch_bytes(const ms_device_shape *s); /* the shared region */
int64_t ms_cuda_scratch_bytes(const ms_device *d, const ms_device_shape *s);

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
