/*
 * comm/launch.c — running the local ranks of a job and watching over them.
 *
 * ms_launch starts n copies of a program as ranks first_rank .. first_rank +
 * n - 1 (each gets MS_RANK and MS_LOCAL_RANK on top of the caller's variables),
 * copies their output line by line to ours with a "[rank K] " prefix, and:
 *   - forwards SIGINT, SIGTERM and SIGHUP to every rank;
 *   - when a rank exits non-zero or dies of a signal, stops the others
 *     (SIGTERM, then SIGKILL after the grace period) and reports that rank;
 *   - leaves nothing behind: each rank leads its own process group, which is
 *     killed as a whole at the end, and dies with us if we are killed
 *     (PR_SET_PDEATHSIG); the shared-memory regions of ranks that died
 *     (/dev/shm/<pid>:..., libfabric's shm) are removed.
 * Signals are read through a signalfd while they are blocked in this thread,
 * so no handler runs inside the Lua interpreter that called us.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "comm/bootstrap.h"
#include "core/clock.h"
#include "core/status.h"

extern char **environ;

enum { LINE_MAX_BYTES = 65536 };

typedef struct stream {
    int fd;          /* read end, -1 once closed */
    int to;          /* 1 or 2 */
    size_t len;
    char buf[LINE_MAX_BYTES];
} stream;

typedef struct child {
    pid_t pid;
    int rank;
    int alive;
    int status;
    stream out, err;
} child;

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

/* Writes the complete lines of s (all of it when flush) with the prefix. */
static void emit(stream *s, const char *prefix, int flush) {
    size_t start = 0;
    for (;;) {
        char *nl = memchr(s->buf + start, '\n', s->len - start);
        size_t end;
        if (nl) {
            end = (size_t)(nl - s->buf) + 1;
        } else if ((flush || s->len == sizeof s->buf) && start < s->len) {
            end = s->len;
        } else {
            break;
        }
        char line[LINE_MAX_BYTES + 64];
        size_t pl = strlen(prefix), n = end - start;
        memcpy(line, prefix, pl);
        memcpy(line + pl, s->buf + start, n);
        if (line[pl + n - 1] != '\n') line[pl + n++] = '\n';
        write_all(s->to, line, pl + n);
        start = end;
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
}

/* Reads what is there; returns 0 at end of file. */
static int pump(stream *s, const char *prefix, int show) {
    ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
    if (n <= 0) {
        if (show) emit(s, prefix, 1);
        close(s->fd);
        s->fd = -1;
        return 0;
    }
    s->len += (size_t)n;
    if (show) emit(s, prefix, 0);
    else s->len = 0;
    return 1;
}

/* The environment of a rank: ours, minus what is set again, plus extra and its rank. */
static char **rank_env(const char *const *extra, int rank, int local_rank) {
    size_t n_env = 0, n_extra = 0;
    while (environ[n_env]) n_env++;
    while (extra && extra[n_extra]) n_extra++;
    char **envp = calloc(n_env + n_extra + 3, sizeof *envp);
    if (!envp) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++) {
        const char *e = environ[i];
        const char *eq = strchr(e, '=');
        size_t name_len = eq ? (size_t)(eq - e) : strlen(e);
        int replaced = (name_len == 7 && strncmp(e, "MS_RANK", 7) == 0) ||
                       (name_len == 13 && strncmp(e, "MS_LOCAL_RANK", 13) == 0);
        for (size_t j = 0; j < n_extra && !replaced; j++)
            replaced = strncmp(extra[j], e, name_len) == 0 && extra[j][name_len] == '=';
        if (!replaced) envp[k++] = (char *)e;
    }
    for (size_t j = 0; j < n_extra; j++) envp[k++] = (char *)extra[j];
    char *r = malloc(64);
    char *l = malloc(64);
    if (!r || !l) {
        free(r);
        free(l);
        free(envp);
        return NULL;
    }
    snprintf(r, 64, "MS_RANK=%d", rank);
    snprintf(l, 64, "MS_LOCAL_RANK=%d", local_rank);
    envp[k++] = r;
    envp[k++] = l;
    envp[k] = NULL;
    return envp;
}

static void free_env(char **envp) {
    if (!envp) return;
    size_t k = 0;
    while (envp[k]) k++;
    free(envp[k - 1]);
    free(envp[k - 2]);
    free(envp);
}

/* Removes /dev/shm/<pid>:... left by a rank that could not clean up. */
static void remove_shm_of(pid_t pid) {
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    char want[32];
    int wl = snprintf(want, sizeof want, "%d:", (int)pid);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, want, (size_t)wl) != 0) continue;
        char path[300];
        snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
        unlink(path);
    }
    closedir(d);
}

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGPIPE: return "SIGPIPE";
    case SIGTERM: return "SIGTERM";
    }
    return "a signal";
}

static void describe_status(int status, char *dst, size_t len) {
    if (WIFSIGNALED(status))
        snprintf(dst, len, "was killed by signal %d (%s)", WTERMSIG(status), signal_name(WTERMSIG(status)));
    else
        snprintf(dst, len, "exited with status %d", WEXITSTATUS(status));
}

static void signal_all(child *ch, int n, int sig) {
    for (int i = 0; i < n; i++)
        if (ch[i].alive) kill(-ch[i].pid, sig);
}

ms_status ms_launch(const char *path, const char *const *argv, const char *const *env, int32_t n,
                    int32_t first_rank, int32_t flags, int32_t grace_ms, ms_launch_result *out) {
    if (!argv || !argv[0] || !out || n < 1 || n > 4096 || first_rank < 0)
        return ms_fail(MS_ERR_INVALID, "ms_launch: needs argv, out, 1..4096 ranks and a first rank >= 0 (got %d, %d)",
                       n, first_rank);
    memset(out, 0, sizeof *out);
    out->failed_rank = -1;
    if (!path) path = "/proc/self/exe";
    if (grace_ms <= 0) grace_ms = 5000;
    child *ch = calloc((size_t)n, sizeof *ch);
    if (!ch) return ms_fail(MS_ERR_NOMEM, "launch: out of memory for %d ranks", n);

    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        free(ch);
        return ms_fail(MS_ERR_IO, "launch: signalfd: %s", strerror(errno));
    }
    ms_status st = MS_OK;
    pid_t me = getpid();
    int started = 0;
    for (int i = 0; i < n; i++) {
        int po[2], pe[2];
        char **envp = rank_env(env, first_rank + i, i);
        if (!envp || pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0) {
            free_env(envp);
            st = ms_fail(MS_ERR_IO, "launch: cannot set up rank %d: %s", first_rank + i, strerror(errno));
            break;
        }
        pid_t pid = fork();
        if (pid == 0) {
            setpgid(0, 0);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != me) _exit(127);
            int devnull = open("/dev/null", O_RDONLY);
            if (devnull >= 0) dup2(devnull, 0);
            dup2(po[1], 1);
            dup2(pe[1], 2);
            sigprocmask(SIG_SETMASK, &old, NULL);
            if (strchr(path, '/')) execve(path, (char *const *)argv, envp);
            else execvpe(path, (char *const *)argv, envp);   /* a bare name: through PATH */
            char msg[512];
            int len = snprintf(msg, sizeof msg, "cannot run %s: %s\n", path, strerror(errno));
            if (len > 0) write_all(2, msg, (size_t)len);
            _exit(127);
        }
        free_env(envp);
        close(po[1]);
        close(pe[1]);
        if (pid < 0) {
            close(po[0]);
            close(pe[0]);
            st = ms_fail(MS_ERR_IO, "launch: fork for rank %d: %s", first_rank + i, strerror(errno));
            break;
        }
        setpgid(pid, pid);
        ch[i] = (child){.pid = pid, .rank = first_rank + i, .alive = 1};
        ch[i].out.fd = po[0];
        ch[i].out.to = 1;
        ch[i].err.fd = pe[0];
        ch[i].err.to = 2;
        started++;
    }

    double stop_at = 0;        /* when stopping: the time to send SIGKILL */
    int stopping = 0, alive = started, open_streams = 2 * started;
    if (st != MS_OK) {         /* could not start them all: stop those that run */
        signal_all(ch, started, SIGTERM);
        stopping = 1;
        stop_at = ms_now() + grace_ms / 1000.0;
    }
    struct pollfd *pf = calloc((size_t)(2 * started + 1), sizeof *pf);
    stream **who = calloc((size_t)(2 * started + 1), sizeof *who);
    int *owner = calloc((size_t)(2 * started + 1), sizeof *owner);
    double drain_until = 0;
    while (pf && who && owner && (alive > 0 || open_streams > 0)) {
        if (alive == 0) {      /* every rank ended: give their output a moment, then stop reading */
            if (drain_until == 0) drain_until = ms_now() + 1.0;
            if (ms_now() > drain_until) break;
        }
        int k = 0;
        pf[k++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        for (int i = 0; i < started; i++) {
            stream *ss[2] = {&ch[i].out, &ch[i].err};
            for (int j = 0; j < 2; j++) {
                if (ss[j]->fd < 0) continue;
                who[k] = ss[j];
                owner[k] = i;
                pf[k++] = (struct pollfd){.fd = ss[j]->fd, .events = POLLIN};
            }
        }
        int wait_ms = 200;
        if (stopping && stop_at > 0) {
            double left = stop_at - ms_now();
            wait_ms = left <= 0 ? 0 : (int)(left * 1000) + 1;
            if (wait_ms > 200) wait_ms = 200;
        }
        poll(pf, (nfds_t)k, wait_ms);
        for (int p = 1; p < k; p++) {
            if (!pf[p].revents) continue;
            int i = owner[p];
            char prefix[32] = "";
            int first_only = (flags & MS_LAUNCH_FIRST_STDOUT_ONLY) != 0;
            if ((flags & MS_LAUNCH_PREFIX) || (first_only && who[p]->to == 2))
                snprintf(prefix, sizeof prefix, "[rank %d] ", ch[i].rank);
            int show = !first_only || i == 0 || who[p]->to == 2;
            if (!pump(who[p], prefix, show)) open_streams--;
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD) continue;
            if (!out->interrupted) out->interrupted = sig;
            signal_all(ch, started, sig);        /* forward, then stop after the grace period */
            if (!stopping) {
                stopping = 1;
                stop_at = ms_now() + grace_ms / 1000.0;
            }
        }
        for (int i = 0; i < started; i++) {
            if (!ch[i].alive) continue;
            int status;
            if (waitpid(ch[i].pid, &status, WNOHANG) != ch[i].pid) continue;
            ch[i].alive = 0;
            ch[i].status = status;
            alive--;
            kill(-ch[i].pid, SIGKILL);          /* whatever it started goes with it */
            remove_shm_of(ch[i].pid);
            int bad = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
            if (bad && out->failed_rank < 0 && !stopping) {
                out->failed_rank = ch[i].rank;
                out->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
                out->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
                describe_status(status, out->what, sizeof out->what);
                stopping = 1;
                stop_at = ms_now() + grace_ms / 1000.0;
                signal_all(ch, started, SIGTERM);
                for (int o = 0; o < started; o++) out->stopped += ch[o].alive;
            }
        }
        if (stopping && alive > 0 && ms_now() >= stop_at) {
            signal_all(ch, started, SIGKILL);
            stop_at = ms_now() + 3600;    /* once */
        }
    }
    /* nothing may outlive the launch */
    for (int i = 0; i < started; i++) {
        if (ch[i].alive) {
            kill(-ch[i].pid, SIGKILL);
            waitpid(ch[i].pid, &ch[i].status, 0);
            ch[i].alive = 0;
            remove_shm_of(ch[i].pid);
        }
        if (ch[i].out.fd >= 0) close(ch[i].out.fd);
        if (ch[i].err.fd >= 0) close(ch[i].err.fd);
    }
    free(pf);
    free(who);
    free(owner);
    close(sfd);
    /* signals that came while blocked were read from the signalfd: none is pending now */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    out->started = started;
    free(ch);
    return st;
}

ms_status ms_free_port(int32_t *port) {
    if (!port) return ms_fail(MS_ERR_INVALID, "ms_free_port: port is NULL");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        return ms_fail(MS_ERR_IO, "cannot find a free TCP port on 127.0.0.1: %s", strerror(e));
    }
    close(fd);
    *port = ntohs(a.sin_port);
    return MS_OK;
}
