/* core/clock.h — the engine's one clock: seconds on the monotonic clock, for
 * deadlines, rates and the costs a run reports (never the time of day). */
#ifndef MS_CORE_CLOCK_H
#define MS_CORE_CLOCK_H
#include <time.h>

static inline double ms_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#endif
