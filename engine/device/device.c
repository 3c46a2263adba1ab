/* device/device.c — choosing a backend by kind. */
#include "core/status.h"
#include "device/cuda.h"
#include "device/device.h"

ms_status ms_device_init(ms_device *d, int32_t kind, int32_t precision, int32_t threads) {
    switch (kind) {
    case MS_DEVICE_CPU:
        ms_device_init_cpu(d, precision, threads);
        return MS_OK;
    case MS_DEVICE_CUDA:
#ifdef MS_HAVE_CUDA
        return ms_device_init_cuda(d, precision, threads);
#else
        return ms_fail(MS_ERR_INVALID, "device \"cuda\": this build has no CUDA backend; "
                                       "use device = \"cpu\"");
#endif
    }
    return ms_fail(MS_ERR_INVALID, "device kind %d is unknown; expected 0 (cpu) or 1 (cuda)", kind);
}
