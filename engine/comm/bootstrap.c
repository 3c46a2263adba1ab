/*
 * comm/bootstrap.c — the TCP rendezvous, the watch for dead ranks, and
 * ms_comm_create which wires them to a transport (the world comes from world.c).
 *
 * Wire format (one host byte order: every rank runs the same build on the same
 * architecture, and the magic says so):
 *   rank -> 0   hello  { magic, version, rank, world, token, host }
 *   0 -> rank   reply  { magic, status, message }, then when accepted the
 *               table  { world x host, root blob }
 * afterwards frames { type, rank, len } + len bytes: GATHER/TABLE (allgather,
 * bcast), BYE (rank -> 0, goodbye), FIN (0 -> rank, everyone said goodbye),
 * GONE (0 -> rank, `rank` died). Every socket is non-blocking and every read
 * or write has a deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "comm/bootstrap.h"
#include "comm/fabric.h"
#include "core/clock.h"
#include "core/status.h"

#define BOOT_MAGIC "MSBOOT\x01\x00"
#define BOOT_VERSION 1
#define MESSAGE_LEN 512

enum { REPLY_OK = 0, REPLY_REFUSED = 1, REPLY_ABORTED = 2 };
enum { FRAME_GATHER = 1, FRAME_TABLE = 2, FRAME_BYE = 3, FRAME_FIN = 4, FRAME_GONE = 5 };

typedef struct hello {
    char magic[8];
    uint32_t version;
    int32_t rank, world;
    char token[64];
    char host[MS_BOOT_HOST_LEN];
} hello;

typedef struct reply {
    char magic[8];
    int32_t status;
    char message[MESSAGE_LEN];
} reply;

typedef struct frame {
    uint32_t type;
    int32_t rank;
    uint32_t len;
    uint32_t pad;
} frame;

struct ms_boot {
    int32_t rank, world;
    int32_t timeout_ms;
    char where[300];
    char (*hosts)[MS_BOOT_HOST_LEN];   /* (world) */
    uint8_t root_blob[MS_BOOT_ROOT_BLOB];
    int *fds;                          /* rank 0: (world) connections, [0] unused; others: [0] to rank 0 */
    /* the watch */
    int watching;
    pthread_t watcher;
    int wake[2];                       /* rank 0: a pipe that stops the watcher */
    atomic_int gone;                   /* first rank gone, -1 none */
    atomic_int *left;                  /* rank 0: (world) 1 once a rank said goodbye or died */
    int fin_seen;
};

/* --------------------------------------------------------------------------
 * Sockets with deadlines
 * -------------------------------------------------------------------------- */

static int remaining_ms(double deadline) {
    double left = deadline - ms_now();
    if (left <= 0) return 0;
    return left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
}

static void nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Reads or writes all of len bytes before the deadline: 0, or -1 with errno
 * (ETIMEDOUT, EPIPE for end of file, or the socket's error). */
static int io_full(int fd, void *buf, size_t len, double deadline, int writing) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0) {
            errno = EPIPE;
            return -1;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pf = {.fd = fd, .events = writing ? POLLOUT : POLLIN};
        poll(&pf, 1, ms);
    }
    return 0;
}

static const char *io_why(void) {
    return errno == ETIMEDOUT ? "timed out" : errno == EPIPE ? "the connection closed" : strerror(errno);
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static int is_loopback_name(const char *addr) {
    return strcmp(addr, "localhost") == 0 || strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0;
}

/* Rank 0's listening socket: on the loopback address when the master is one, else on every address. */
static ms_status listen_on(const ms_world *w, int *out) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", w->master_port);
    const char *node = NULL;
    if (is_loopback_name(w->master_addr)) {
        node = strcmp(w->master_addr, "localhost") == 0 ? "127.0.0.1" : w->master_addr;
    } else {
        hints.ai_family = AF_INET6;  /* dual stack: IPv4 clients arrive as mapped addresses */
    }
    int err = getaddrinfo(node, port, &hints, &res);
    if (err && !node) {
        hints.ai_family = AF_INET;
        err = getaddrinfo(NULL, port, &hints, &res);
    }
    if (err)
        return ms_fail(MS_ERR_IO, "rendezvous: cannot make a listening address for port %s: %s", port,
                       gai_strerror(err));
    int fd = -1, last = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 1024) == 0) break;
        last = errno;
        close_fd(&fd);
    }
    freeaddrinfo(res);
    if (fd < 0 && !node && hints.ai_family == AF_INET6) {
        /* no IPv6 on this host: IPv4 only */
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->master_port)};
        fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (fd >= 0 && (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 1024) != 0)) {
            last = errno;
            close_fd(&fd);
        }
    }
    if (fd < 0)
        return ms_fail(MS_ERR_IO,
                       "rendezvous: rank 0 cannot listen on port %d: %s; another job (or an earlier run) may "
                       "hold it: choose another master port",
                       w->master_port, strerror(last));
    nonblocking(fd);
    *out = fd;
    return MS_OK;
}

/* One connection attempt to the master: an fd, or -1 with why (a sentence). */
static int connect_once(const ms_world *w, double deadline, char *why, size_t why_len) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", w->master_port);
    int err = getaddrinfo(w->master_addr, port, &hints, &res);
    if (err) {
        snprintf(why, why_len, "the name %s does not resolve (%s)", w->master_addr, gai_strerror(err));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            snprintf(why, why_len, "socket: %s", strerror(errno));
            continue;
        }
        nonblocking(fd);
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int ms = remaining_ms(deadline);
            if (ms > 2000) ms = 2000;
            if (poll(&pf, 1, ms) == 1) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                errno = soerr;
                rc = soerr ? -1 : 0;
            } else {
                errno = ETIMEDOUT;
            }
        }
        if (rc != 0) {
            snprintf(why, why_len, "connecting to %s:%s: %s", w->master_addr, port, strerror(errno));
            close_fd(&fd);
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* --------------------------------------------------------------------------
 * The rendezvous
 * -------------------------------------------------------------------------- */

static void boot_free(ms_boot *b) {
    if (!b) return;
    if (b->fds) {
        int n = b->rank == 0 ? b->world : 1;
        for (int i = 0; i < n; i++) close_fd(&b->fds[i]);
    }
    free(b->fds);
    free(b->hosts);
    free((void *)b->left);
    free(b);
}

static void send_reply(int fd, int32_t status, const char *message, double deadline) {
    reply r;
    memset(&r, 0, sizeof r);
    memcpy(r.magic, BOOT_MAGIC, 8);
    r.status = status;
    size_t n = strlen(message);
    if (n > sizeof r.message - 1) n = sizeof r.message - 1;
    memcpy(r.message, message, n);
    io_full(fd, &r, sizeof r, deadline, 1);
}

typedef struct pending {
    int fd;
    size_t got;
    hello h;
} pending;

/* Checks a complete hello at rank 0: -1 accepted (joined[rank] = fd), else refused with why. */
static int judge(ms_boot *b, const ms_world *w, const hello *h, char *why, size_t why_len) {
    if (memcmp(h->magic, BOOT_MAGIC, 8) != 0) {
        snprintf(why, why_len, "it does not speak the moonspeed rendezvous");
        return 0;
    }
    if (h->version != BOOT_VERSION) {
        snprintf(why, why_len, "it speaks rendezvous version %u, rank 0 speaks %u; run the same moonspeed on every rank",
                 h->version, BOOT_VERSION);
        return 0;
    }
    char token[sizeof h->token + 1];
    memcpy(token, h->token, sizeof h->token);
    token[sizeof h->token] = '\0';
    if (strcmp(token, w->job_token) != 0) {
        snprintf(why, why_len,
                 "its job token (MS_JOB_TOKEN) is not this job's; it belongs to another job or was started "
                 "with a stale token");
        return 0;
    }
    if (h->world != w->world) {
        snprintf(why, why_len, "it counts a world of %d ranks, rank 0 counts %d; start every rank with the same world size",
                 h->world, w->world);
        return 0;
    }
    if (h->rank <= 0 || h->rank >= w->world) {
        snprintf(why, why_len, "its rank %d is not in 1..%d", h->rank, w->world - 1);
        return 0;
    }
    if (b->fds[h->rank] >= 0) {
        snprintf(why, why_len, "rank %d has already joined from host %s; two processes claim the same rank",
                 h->rank, b->hosts[h->rank]);
        return 0;
    }
    return -1;
}

static ms_status send_table(ms_boot *b, int rank, double deadline) {
    int fd = b->fds[rank];
    if (io_full(fd, b->hosts, (size_t)b->world * MS_BOOT_HOST_LEN, deadline, 1) != 0 ||
        io_full(fd, b->root_blob, sizeof b->root_blob, deadline, 1) != 0)
        return ms_fail(MS_ERR_IO, "rendezvous at %s: sending the table to rank %d (host %s) failed: %s", b->where,
                       rank, b->hosts[rank], io_why());
    return MS_OK;
}

static void list_ranks(char *dst, size_t len, const int *fds, int world) {
    dst[0] = '\0';
    int n = 0;
    for (int r = 1; r < world; r++) {
        if (fds[r] >= 0) continue;
        size_t used = strlen(dst);
        if (n == 12) {
            snprintf(dst + used, len - used, ", ...");
            break;
        }
        snprintf(dst + used, len - used, "%s%d", n ? ", " : "", r);
        n++;
    }
}

static ms_status rendezvous_root(ms_boot *b, const ms_world *w, double deadline) {
    int lfd = -1;
    TRY(listen_on(w, &lfd));
    enum { MAX_PENDING = 256 };
    pending *pend = calloc(MAX_PENDING, sizeof *pend);
    if (!pend) {
        close(lfd);
        return ms_fail(MS_ERR_NOMEM, "rendezvous: out of memory");
    }
    struct pollfd *pf = calloc(MAX_PENDING + 1, sizeof *pf);
    int n_pend = 0, joined = 1, refused = 0;
    char last_refusal[MESSAGE_LEN] = "";
    ms_status st = MS_OK;
    while (joined < w->world) {
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            char missing[128];
            list_ranks(missing, sizeof missing, b->fds, w->world);
            int n_missing = w->world - joined;
            char refusals[MESSAGE_LEN + 64] = "";
            if (refused)
                snprintf(refusals, sizeof refusals, " (%d connection%s refused; the last: %s)", refused,
                         refused == 1 ? " was" : "s were", last_refusal);
            st = ms_fail(MS_ERR_IO,
                         "rendezvous at %s: rank%s %s of %d did not join within %.1f s%s; check that %s started "
                         "with the same master address, port and job token, and can reach this host",
                         b->where, n_missing == 1 ? "" : "s", missing, w->world, b->timeout_ms / 1000.0, refusals,
                         n_missing == 1 ? "it was" : "they were");
            for (int r = 1; r < w->world; r++)
                if (b->fds[r] >= 0) send_reply(b->fds[r], REPLY_ABORTED, ms_last_error(), ms_now() + 1.0);
            break;
        }
        pf[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < n_pend; i++) pf[i + 1] = (struct pollfd){.fd = pend[i].fd, .events = POLLIN};
        if (poll(pf, (nfds_t)n_pend + 1, ms > 100 ? 100 : ms) <= 0) continue;
        for (int i = n_pend - 1; i >= 0; i--) {
            if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            pending *p = &pend[i];
            ssize_t n = recv(p->fd, (char *)&p->h + p->got, sizeof p->h - p->got, 0);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            int done = 0;
            if (n <= 0) {
                close_fd(&p->fd);
                done = 1;
            } else if ((p->got += (size_t)n) == sizeof p->h) {
                char why[MESSAGE_LEN - 100];
                p->h.host[MS_BOOT_HOST_LEN - 1] = '\0';
                if (judge(b, w, &p->h, why, sizeof why) < 0) {
                    b->fds[p->h.rank] = p->fd;
                    memcpy(b->hosts[p->h.rank], p->h.host, MS_BOOT_HOST_LEN);
                    joined++;
                } else {
                    char msg[1100];
                    snprintf(msg, sizeof msg, "rank 0 at %s refused rank %d from host %s: %s", b->where, p->h.rank,
                             p->h.host, why);
                    fprintf(stderr, "moonspeed: rendezvous: %s\n", msg);
                    snprintf(last_refusal, sizeof last_refusal, "%s", why);
                    refused++;
                    send_reply(p->fd, REPLY_REFUSED, msg, ms_now() + 1.0);
                    close_fd(&p->fd);
                }
                done = 1;
            }
            if (done) pend[i] = pend[--n_pend];
        }
        if (pf[0].revents & POLLIN) {
            for (;;) {
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0) break;
                if (n_pend == MAX_PENDING) {
                    close(fd);
                    continue;
                }
                nonblocking(fd);
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                pend[n_pend++] = (pending){.fd = fd};
            }
        }
    }
    for (int i = 0; i < n_pend; i++) close_fd(&pend[i].fd);
    free(pend);
    free(pf);
    close(lfd);
    if (st != MS_OK) return st;
    double send_deadline = ms_now() + b->timeout_ms / 1000.0;
    for (int r = 1; r < w->world; r++) {
        send_reply(b->fds[r], REPLY_OK, "", send_deadline);
        TRY(send_table(b, r, send_deadline));
    }
    return MS_OK;
}

static ms_status rendezvous_rank(ms_boot *b, const ms_world *w, double deadline) {
    char why[512] = "";
    int fd = -1;
    double pause = 0.05;
    while (fd < 0) {
        fd = connect_once(w, deadline, why, sizeof why);
        if (fd >= 0) break;
        if (remaining_ms(deadline) == 0)
            return ms_fail(MS_ERR_IO,
                           "rendezvous: rank %d could not reach rank 0 at %s within %.1f s (last attempt: %s); "
                           "is rank 0 running, and are the master address and port right?",
                           w->rank, b->where, b->timeout_ms / 1000.0, why);
        double left = deadline - ms_now();
        double nap = pause < left ? pause : left;
        if (nap > 0) {
            struct timespec ts = {.tv_sec = (time_t)nap, .tv_nsec = (long)((nap - (double)(time_t)nap) * 1e9)};
            nanosleep(&ts, NULL);
        }
        if (pause < 1.0) pause *= 2;
    }
    b->fds[0] = fd;
    hello h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, BOOT_MAGIC, 8);
    h.version = BOOT_VERSION;
    h.rank = w->rank;
    h.world = w->world;
    snprintf(h.token, sizeof h.token, "%s", w->job_token);
    memcpy(h.host, b->hosts[w->rank], MS_BOOT_HOST_LEN);
    /* Rank 0 answers when everyone has joined or at its own deadline: allow for it starting later. */
    double answer_deadline = deadline + 2.0 + b->timeout_ms / 2000.0;
    reply r;
    if (io_full(fd, &h, sizeof h, answer_deadline, 1) != 0 || io_full(fd, &r, sizeof r, answer_deadline, 0) != 0)
        return ms_fail(MS_ERR_IO, "rendezvous: rank %d reached %s but got no answer from rank 0: %s", w->rank,
                       b->where, io_why());
    r.message[MESSAGE_LEN - 1] = '\0';
    if (memcmp(r.magic, BOOT_MAGIC, 8) != 0)
        return ms_fail(MS_ERR_IO, "rendezvous: %s does not answer like a moonspeed rank 0; is the master port right?",
                       b->where);
    if (r.status == REPLY_REFUSED)
        return ms_fail(MS_ERR_INVALID, "rendezvous: this rank was refused: %s", r.message);
    if (r.status != REPLY_OK) return ms_fail(MS_ERR_IO, "rendezvous: rank 0 gave up: %s", r.message);
    if (io_full(fd, b->hosts, (size_t)w->world * MS_BOOT_HOST_LEN, answer_deadline, 0) != 0 ||
        io_full(fd, b->root_blob, sizeof b->root_blob, answer_deadline, 0) != 0)
        return ms_fail(MS_ERR_IO, "rendezvous at %s: reading the table from rank 0 failed: %s", b->where, io_why());
    for (int i = 0; i < w->world; i++) b->hosts[i][MS_BOOT_HOST_LEN - 1] = '\0';
    return MS_OK;
}

ms_status ms_boot_connect(const ms_world *w, int32_t timeout_ms, const void *root_blob, ms_boot **out) {
    if (!w || !out) return ms_fail(MS_ERR_INVALID, "ms_boot_connect: NULL argument");
    *out = NULL;
    if (w->world < 2 || w->rank < 0 || w->rank >= w->world)
        return ms_fail(MS_ERR_INVALID, "rendezvous: rank %d of world %d is not a rank of a world of 2 or more",
                       w->rank, w->world);
    if (timeout_ms <= 0) return ms_fail(MS_ERR_INVALID, "rendezvous: timeout %d ms must be positive", timeout_ms);
    ms_boot *b = calloc(1, sizeof *b);
    if (!b) return ms_fail(MS_ERR_NOMEM, "rendezvous: out of memory");
    b->rank = w->rank;
    b->world = w->world;
    b->timeout_ms = timeout_ms;
    b->wake[0] = b->wake[1] = -1;
    atomic_init(&b->gone, -1);
    int n_fds = w->rank == 0 ? w->world : 1;
    b->fds = malloc(sizeof(int) * (size_t)n_fds);
    b->hosts = calloc((size_t)w->world, MS_BOOT_HOST_LEN);
    b->left = calloc((size_t)w->world, sizeof(atomic_int));
    if (!b->fds || !b->hosts || !b->left) {
        boot_free(b);
        return ms_fail(MS_ERR_NOMEM, "rendezvous: out of memory for a world of %d", w->world);
    }
    for (int i = 0; i < n_fds; i++) b->fds[i] = -1;
    snprintf(b->where, sizeof b->where, strchr(w->master_addr, ':') ? "[%s]:%d" : "%s:%d", w->master_addr,
             w->master_port);
    if (gethostname(b->hosts[w->rank], MS_BOOT_HOST_LEN - 1) != 0) snprintf(b->hosts[w->rank], 16, "unknown");
    if (w->rank == 0 && root_blob) memcpy(b->root_blob, root_blob, sizeof b->root_blob);
    double deadline = ms_now() + timeout_ms / 1000.0;
    ms_status st = w->rank == 0 ? rendezvous_root(b, w, deadline) : rendezvous_rank(b, w, deadline);
    if (st != MS_OK) {
        boot_free(b);
        return st;
    }
    *out = b;
    return MS_OK;
}

const char *ms_boot_host(const ms_boot *b, int32_t rank) { return b->hosts[rank]; }
const uint8_t *ms_boot_root_blob(const ms_boot *b) { return b->root_blob; }
const char *ms_boot_where(const ms_boot *b) { return b->where; }

int ms_boot_all_on_this_host(const ms_boot *b) {
    for (int r = 0; r < b->world; r++)
        if (strcmp(b->hosts[r], b->hosts[b->rank]) != 0) return 0;
    return 1;
}

/* --------------------------------------------------------------------------
 * Small exchanges before the watch
 * -------------------------------------------------------------------------- */

static ms_status frame_io(int fd, frame *f, void *payload, uint32_t max_len, double deadline,
                          int writing, const char *what, int peer) {
    if (io_full(fd, f, sizeof *f, deadline, writing) == 0 &&
        (f->len <= max_len || writing) && io_full(fd, payload, f->len, deadline, writing) == 0)
        return MS_OK;
    if (!writing && f->len > max_len)
        return ms_fail(MS_ERR_INTERNAL, "%s: rank %d sent %u bytes, expected at most %u", what, peer, f->len, max_len);
    return ms_fail(MS_ERR_IO, "%s over the rendezvous connection %s rank %d failed: %s", what,
                   writing ? "to" : "from", peer, io_why());
}

ms_status ms_boot_allgather(ms_boot *b, const void *mine, int32_t len, void *all) {
    if (b->watching) return ms_fail(MS_ERR_STATE, "ms_boot_allgather after ms_boot_watch");
    double deadline = ms_now() + b->timeout_ms / 1000.0;
    char *dst = all;
    memcpy(dst + (size_t)b->rank * (size_t)len, mine, (size_t)len);
    frame f = {.type = FRAME_GATHER, .rank = b->rank, .len = (uint32_t)len};
    if (b->rank != 0) {
        TRY(frame_io(b->fds[0], &f, (void *)mine, (uint32_t)len, deadline, 1, "allgather", 0));
        TRY(frame_io(b->fds[0], &f, all, (uint32_t)len * (uint32_t)b->world, deadline, 0, "allgather", 0));
        if (f.type != FRAME_TABLE || f.len != (uint32_t)len * (uint32_t)b->world)
            return ms_fail(MS_ERR_INTERNAL, "allgather: rank 0 answered with frame %u of %u bytes", f.type, f.len);
        return MS_OK;
    }
    for (int r = 1; r < b->world; r++) {
        TRY(frame_io(b->fds[r], &f, dst + (size_t)r * (size_t)len, (uint32_t)len, deadline, 0, "allgather", r));
        if (f.type != FRAME_GATHER || f.len != (uint32_t)len)
            return ms_fail(MS_ERR_INTERNAL, "allgather: rank %d sent frame %u of %u bytes, expected %d", r, f.type,
                           f.len, len);
    }
    for (int r = 1; r < b->world; r++) {
        frame t = {.type = FRAME_TABLE, .rank = 0, .len = (uint32_t)len * (uint32_t)b->world};
        TRY(frame_io(b->fds[r], &t, all, t.len, deadline, 1, "allgather", r));
    }
    return MS_OK;
}

ms_status ms_boot_bcast(ms_boot *b, void *buf, int32_t len) {
    if (b->watching) return ms_fail(MS_ERR_STATE, "ms_boot_bcast after ms_boot_watch");
    double deadline = ms_now() + b->timeout_ms / 1000.0;
    frame f = {.type = FRAME_TABLE, .rank = 0, .len = (uint32_t)len};
    if (b->rank != 0) {
        TRY(frame_io(b->fds[0], &f, buf, (uint32_t)len, deadline, 0, "broadcast", 0));
        if (f.type != FRAME_TABLE || f.len != (uint32_t)len)
            return ms_fail(MS_ERR_INTERNAL, "broadcast: rank 0 sent frame %u of %u bytes, expected %d", f.type,
                           f.len, len);
        return MS_OK;
    }
    for (int r = 1; r < b->world; r++) TRY(frame_io(b->fds[r], &f, buf, (uint32_t)len, deadline, 1, "broadcast", r));
    return MS_OK;
}

/* --------------------------------------------------------------------------
 * The watch: who is gone
 * -------------------------------------------------------------------------- */

/* One frame from a readable socket: 1, 0 when there is none yet, -1 at end of
 * file or on a broken connection (a frame cut short counts as broken). */
static int read_frame(int fd, frame *f) {
    ssize_t got = recv(fd, f, sizeof *f, 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    if (got <= 0) return -1;
    if ((size_t)got < sizeof *f && io_full(fd, (char *)f + got, sizeof *f - (size_t)got, ms_now() + 2.0, 0) != 0)
        return -1;
    return 1;
}

/* Rank 0's watcher: reads every connection; BYE marks a rank as left, end of
 * file without one marks it gone and tells every other rank. */
static void *watch_main(void *arg) {
    ms_boot *b = arg;
    struct pollfd *pf = calloc((size_t)b->world, sizeof *pf);
    int *who = calloc((size_t)b->world, sizeof *who);
    if (!pf || !who) {
        free(pf);
        free(who);
        return NULL;
    }
    for (;;) {
        int n = 0;
        pf[n++] = (struct pollfd){.fd = b->wake[0], .events = POLLIN};
        for (int r = 1; r < b->world; r++) {
            if (atomic_load(&b->left[r])) continue;
            who[n] = r;
            pf[n++] = (struct pollfd){.fd = b->fds[r], .events = POLLIN};
        }
        if (poll(pf, (nfds_t)n, -1) < 0 && errno != EINTR) break;
        if (pf[0].revents) break;
        for (int i = 1; i < n; i++) {
            if (!pf[i].revents) continue;
            int r = who[i];
            frame f;
            int got = read_frame(b->fds[r], &f);
            if (got == 0) continue;
            if (got > 0 && f.type == FRAME_BYE && f.len == 0) {
                atomic_store(&b->left[r], 1);
                continue;
            }
            /* end of file (or garbage) without a goodbye: the process is gone */
            atomic_store(&b->left[r], 1);
            int expected = -1;
            atomic_compare_exchange_strong(&b->gone, &expected, r);
            frame g = {.type = FRAME_GONE, .rank = r, .len = 0};
            for (int o = 1; o < b->world; o++)
                if (o != r && !atomic_load(&b->left[o])) io_full(b->fds[o], &g, sizeof g, ms_now() + 0.5, 1);
        }
    }
    free(pf);
    free(who);
    return NULL;
}

ms_status ms_boot_watch(ms_boot *b) {
    if (b->watching) return MS_OK;
    if (b->rank == 0) {
        if (pipe(b->wake) != 0) return ms_fail(MS_ERR_IO, "watch: pipe: %s", strerror(errno));
        if (pthread_create(&b->watcher, NULL, watch_main, b) != 0) {
            close_fd(&b->wake[0]);
            close_fd(&b->wake[1]);
            return ms_fail(MS_ERR_IO, "watch: cannot start the watcher thread");
        }
    }
    b->watching = 1;
    return MS_OK;
}

/* A rank other than 0 reads what rank 0 sent: GONE names a rank, FIN ends,
 * end of file means rank 0 is gone. */
static void read_rank0(ms_boot *b, int block_ms) {
    for (;;) {
        struct pollfd pf = {.fd = b->fds[0], .events = POLLIN};
        if (b->fds[0] < 0 || poll(&pf, 1, block_ms) <= 0) return;
        frame f;
        int got = read_frame(b->fds[0], &f);
        if (got == 0) return;
        int expected = -1;
        if (got < 0) {
            if (!b->fin_seen) atomic_compare_exchange_strong(&b->gone, &expected, 0);
            close_fd(&b->fds[0]);
            return;
        }
        if (f.type == FRAME_GONE) atomic_compare_exchange_strong(&b->gone, &expected, f.rank);
        if (f.type == FRAME_FIN) {
            b->fin_seen = 1;
            return;
        }
    }
}

int32_t ms_boot_gone(ms_boot *b) {
    if (!b) return -1;
    if (b->rank != 0 && atomic_load(&b->gone) < 0) read_rank0(b, 0);
    return atomic_load(&b->gone);
}

void ms_boot_abort(ms_boot *b) {
    if (!b) return;
    if (b->rank == 0 && b->wake[1] >= 0) {
        char c = 1;
        if (write(b->wake[1], &c, 1) == 1) pthread_join(b->watcher, NULL);
        close_fd(&b->wake[0]);
        close_fd(&b->wake[1]);
    }
    boot_free(b);
}

void ms_boot_close(ms_boot *b) {
    if (!b) return;
    double deadline = ms_now() + b->timeout_ms / 1000.0;
    if (b->rank != 0) {
        frame bye = {.type = FRAME_BYE, .rank = b->rank, .len = 0};
        if (b->fds[0] >= 0 && io_full(b->fds[0], &bye, sizeof bye, deadline, 1) == 0) {
            while (!b->fin_seen && b->fds[0] >= 0 && remaining_ms(deadline) > 0) read_rank0(b, remaining_ms(deadline));
        }
    } else {
        if (!b->watching) ms_boot_watch(b);
        /* wait until every rank said goodbye or is gone */
        for (;;) {
            int all = 1;
            for (int r = 1; r < b->world; r++) all &= atomic_load(&b->left[r]) != 0;
            if (all || remaining_ms(deadline) == 0) break;
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (b->rank == 0 && b->wake[1] >= 0) {
        char c = 1;
        if (write(b->wake[1], &c, 1) == 1) pthread_join(b->watcher, NULL);
        close_fd(&b->wake[0]);
        close_fd(&b->wake[1]);
        frame fin = {.type = FRAME_FIN, .rank = 0, .len = 0};
        for (int r = 1; r < b->world; r++)
            if (b->fds[r] >= 0) io_full(b->fds[r], &fin, sizeof fin, ms_now() + 0.5, 1);
    }
    boot_free(b);
}

/* --------------------------------------------------------------------------
 * The communicator of this process's world
 * -------------------------------------------------------------------------- */

ms_status ms_comm_create(const ms_world *w, const char *provider, int32_t timeout_ms, ms_comm **out) {
    if (!w || !out) return ms_fail(MS_ERR_INVALID, "ms_comm_create: NULL argument");
    *out = NULL;
    if (timeout_ms <= 0)
        return ms_fail(MS_ERR_INVALID, "ms_comm_create: timeout %d ms must be positive", timeout_ms);
    if (w->world == 1) {
        TRY(ms_comm_single(out));
        (*out)->timeout_ms = timeout_ms;
        return MS_OK;
    }
    return ms_fabric_create(w, provider, timeout_ms, out);
}
