/*
 * core/signals.c — a graceful stop on SIGTERM or SIGINT (see moonspeed.h).
 *
 * The first signal only sets a flag, which the training loop reads between
 * steps: it finishes the step, saves a checkpoint and exits. The handler is
 * installed with SA_RESETHAND, so a second signal acts as usual and ends the
 * process at once. SA_RESTART keeps the system calls of a step going.
 * SIGXFSZ (a file-size limit reached) is ignored, so that it becomes a write
 * error the writer reports (EFBIG) instead of killing the process mid-save.
 */
#include <signal.h>
#include <string.h>
#include <errno.h>

#include "core/status.h"
#include "include/moonspeed.h"

static volatile sig_atomic_t pending;

static void on_signal(int sig) {
    if (!pending) pending = sig;
}

ms_status ms_signals_watch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    static const int sigs[] = {SIGTERM, SIGINT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return ms_fail(MS_ERR_INTERNAL, "cannot watch signal %d: %s", sigs[i], strerror(errno));
    signal(SIGXFSZ, SIG_IGN);
    return MS_OK;
}

int32_t ms_signal_pending(void) { return (int32_t)pending; }
