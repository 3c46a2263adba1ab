/*
 * comm/fabric.c — collectives over libfabric: tagged messages, pipelined rings.
 *
 * Algorithms (W ranks, r this rank, left = r - 1, right = r + 1, mod W):
 *   all_gather      ring: message m carries block r - m to the right; the
 *                   received block r - 1 - m is forwarded as message m + 1.
 *   reduce_scatter  ring: message m carries the partial sum of block r - 1 - m;
 *                   the received partial of block r - 2 - m gets this rank's
 *                   term and goes on as message m + 1; after W - 1 messages the
 *                   partial of block r holds every term. Partial sums travel as
 *                   fp32 (bf16 too), so bf16 rounds once, at the end.
 *   all_reduce      reduce_scatter over W near-equal blocks of `count`, then
 *                   all_gather of the finished blocks: 2 (W - 1) messages.
 *   broadcast       chain root -> root + 1 -> ... -> root - 1.
 *   barrier         dissemination: round i sends to r + 2^i, hears r - 2^i.
 * Every block is cut into chunks that flow independently, up to N_PIPES at a
 * time per request (the pipeline): a chunk is forwarded as soon as it arrives.
 * Each pipeline keeps up to LOOKAHEAD receives posted ahead of its sends.
 *
 * Tags: (collective sequence number : 20 bits, sender : 16, message index :
 * 24) with the message index = chunk * messages-per-chunk + m, so a late
 * message of an earlier collective can never match. Receives take any source
 * (FI_ADDR_UNSPEC) and name the sender in the tag.
 *
 * Progress is manual: waiting means reading the completion queue, and a
 * completion advances its pipeline (reduce, forward, post the next receive).
 * Requests, operation contexts and staging slots are reserved at create; a
 * collective allocates nothing. Memory is registered only when the provider
 * asks for it (FI_MR_LOCAL): the staging once at create, user buffers per call.
 *
 * Failure: every wait fails when no message of its collective arrived for the
 * communicator's timeout, naming the peers it waits on; or at once when the
 * rendezvous reports a rank gone (its process died). After a failure the
 * communicator refuses further work.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_tagged.h>

#include "comm/fabric_impl.h"
#include "core/clock.h"
#include "core/status.h"

/* --------------------------------------------------------------------------
 * Failure
 * -------------------------------------------------------------------------- */

/* Latches the failure: later calls refuse, repeating it. */
#define fail(f, st, ...) ms_comm_latch((f)->failure, sizeof (f)->failure, &(f)->failed, st, __VA_ARGS__)

/* Removes the shared-memory region a dead rank of the shm provider left behind. */
void fab_remove_region(fab *f, int32_t rank) {
    if (!f->names || strcmp(f->provider, "shm") != 0) return;
    char name[NAME_MAX_LEN + 1];
    memcpy(name, f->names + (size_t)rank * NAME_REC + 4, NAME_MAX_LEN);
    name[NAME_MAX_LEN] = '\0';
    const char *base = strncmp(name, "fi_shm://", 9) == 0 ? name + 9 : name;
    if (!*base || strchr(base, '/') || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) return;
    char path[NAME_MAX_LEN + 16];
    snprintf(path, sizeof path, "/dev/shm/%s", base);
    unlink(path);
}

static ms_status fail_gone(fab *f, const char *what, int32_t gone) {
    fab_remove_region(f, gone);
    return fail(f, MS_ERR_IO, "%s: rank %d is gone: it left the job without a goodbye (it died or was killed)", what,
                gone);
}

static ms_status refuse_if_failed(fab *f, const char *what) {
    if (!f->failed) return MS_OK;
    return ms_fail(MS_ERR_STATE, "%s: the communicator failed earlier (%s); create a new one", what, f->failure);
}

static const char *fi_err(fab *f, ssize_t rc) { return f->strerror((int)(rc < 0 ? -rc : rc)); }

static const char *req_name(const ms_comm_req *q, char *buf, size_t len) {
    snprintf(buf, len, "%s #%u", ms_comm_kind_name(q->kind), q->seq);
    return buf;
}

/* --------------------------------------------------------------------------
 * Geometry: which bytes message m of chunk k is, and who sends it
 * -------------------------------------------------------------------------- */

static int32_t wrap(int64_t a, int32_t w) { return (int32_t)(((a % w) + w) % w); }

/* all_reduce block b of count: [start, start + len). */
static void ar_block(const ms_comm_req *q, int32_t b, int64_t *start, int64_t *len) {
    int64_t w = q->f->c.world, base = q->count / w, rem = q->count % w;
    *start = b * base + (b < rem ? b : rem);
    *len = base + (b < rem);
}

/* Chunk k of a block of len elements: [off, off + n). */
static void chunk_of(const ms_comm_req *q, int64_t k, int64_t len, int64_t *off, int64_t *n) {
    int64_t o = k * q->chunk, e = o + q->chunk;
    if (o > len) o = len;
    if (e > len) e = len;
    *off = o;
    *n = e - o;
}

/* The block a message carries: sends go right, receives come from the left. */
static int32_t msg_block(const ms_comm_req *q, int32_t m, int is_send) {
    int32_t r = q->f->c.rank, w = q->f->c.world;
    switch (q->kind) {
    case MS_COMM_ALL_GATHER: return wrap(is_send ? r - m : r - 1 - m, w);
    case MS_COMM_REDUCE_SCATTER: return wrap(is_send ? r - 1 - m : r - 2 - m, w);
    case MS_COMM_ALL_REDUCE:
        if (m < w - 1) return wrap(is_send ? r - 1 - m : r - 2 - m, w);
        return wrap(is_send ? r - (m - (w - 1)) : r - 1 - (m - (w - 1)), w);
    }
    return 0;
}

static int32_t msg_peer(const ms_comm_req *q, int32_t m, int is_send) {
    int32_t r = q->f->c.rank, w = q->f->c.world;
    if (q->kind == MS_COMM_BARRIER) {
        int64_t d = (int64_t)1 << m;
        return wrap(is_send ? r + d : r - d, w);
    }
    return wrap(is_send ? r + 1 : r - 1, w);
}

static float *slot_ptr(const ms_comm_req *q, int32_t pipe, int32_t slot) {
    return q->slots + ((int64_t)pipe * N_SLOTS + slot) * q->f->slot_elems;
}

/* The user-buffer range [off, off + n) elements of block b, and its element offset in `count` units. */
static int64_t block_start(const ms_comm_req *q, int32_t b) {
    if (q->kind == MS_COMM_ALL_REDUCE) {
        int64_t start, len;
        ar_block(q, b, &start, &len);
        return start;
    }
    return (int64_t)b * q->count;
}

static int64_t block_len(const ms_comm_req *q, int32_t b) {
    if (q->kind == MS_COMM_ALL_REDUCE) {
        int64_t start, len;
        ar_block(q, b, &start, &len);
        return len;
    }
    return q->count;
}

/* Fills o's buffer, length, descriptor and slot for message m of pipe p. */
static void describe(ms_comm_req *q, int32_t p, int32_t m, int is_send, op *o) {
    fab *f = q->f;
    int64_t k = q->pipes[p].chunk;
    o->slot = -1;
    o->desc = NULL;
    if (q->kind == MS_COMM_BARRIER) {
        o->buf = f->dummy;
        o->len = 0;
        return;
    }
    if (q->kind == MS_COMM_BROADCAST) {
        int64_t off, n;
        chunk_of(q, k, q->count, &off, &n);
        o->buf = q->recv + off;
        o->len = (size_t)n;
        o->desc = q->desc_recv;
        return;
    }
    int32_t b = msg_block(q, m, is_send);
    int64_t off, n;
    chunk_of(q, k, block_len(q, b), &off, &n);
    int64_t at = block_start(q, b) + off;
    if (m < q->reduce_msgs) {               /* partial sums in fp32 */
        o->len = (size_t)n * sizeof(float);
        if (!is_send) {
            o->slot = (int8_t)(m % 2);
        } else if (m > 0) {
            o->slot = (int8_t)((m - 1) % 2);
        } else if (q->dtype == MS_BF16) {
            o->slot = 2;
        } else {
            o->buf = (void *)(q->send + at * q->esize);
            o->desc = q->desc_send;
            return;
        }
        o->buf = slot_ptr(q, p, o->slot);
        o->desc = f->slot_desc;
        return;
    }
    o->len = (size_t)(n * q->esize);
    if (is_send && m == 0) {                /* all_gather's own block: send holds only it */
        o->buf = (void *)(q->send + off * q->esize);
        o->desc = q->desc_send;
    } else {
        o->buf = q->recv + at * q->esize;
        o->desc = q->desc_recv;
    }
}

static uint64_t make_tag(const ms_comm_req *q, int32_t sender, int32_t p, int32_t m) {
    uint64_t index = (uint64_t)q->pipes[p].chunk * (uint64_t)q->n_msgs + (uint64_t)m;
    return ((uint64_t)(q->seq & ((1u << SEQ_BITS) - 1)) << (SENDER_BITS + INDEX_BITS)) |
           ((uint64_t)sender << INDEX_BITS) | (index & ((1u << INDEX_BITS) - 1));
}

/* --------------------------------------------------------------------------
 * Posting and completing operations
 * -------------------------------------------------------------------------- */

static ms_status post(fab *f, op *o) {
    ssize_t rc = o->is_send ? fi_tsend(f->ep, o->buf, o->len, o->desc, f->addr[o->peer], o->tag, &o->ctx)
                            : fi_trecv(f->ep, o->buf, o->len, o->desc, FI_ADDR_UNSPEC, o->tag, 0, &o->ctx);
    if (rc == 0) return MS_OK;
    if (rc == -FI_EAGAIN) {                 /* the provider's queue is full: retry after progress */
        o->next = NULL;
        if (f->retry_tail) f->retry_tail->next = o;
        else f->retry_head = o;
        f->retry_tail = o;
        return MS_OK;
    }
    char name[64];
    return fail(f, MS_ERR_IO, "%s: posting a %s rank %d failed: %s", req_name(o->req, name, sizeof name),
                o->is_send ? "send to" : "receive from", o->peer, fi_err(f, rc));
}

static op *op_get(fab *f) {
    op *o = f->free_ops;
    if (o) f->free_ops = o->next;
    return o;
}

void fab_op_put(fab *f, op *o) {
    o->next = f->free_ops;
    f->free_ops = o;
}

static ms_status post_msg(ms_comm_req *q, int32_t p, int32_t m, int is_send) {
    fab *f = q->f;
    op *o = op_get(f);
    if (!o) return fail(f, MS_ERR_INTERNAL, "fabric: out of operation contexts (a bug: the pool is sized for the pipelines)");
    o->req = q;
    o->pipe = p;
    o->m = m;
    o->is_send = (int8_t)is_send;
    describe(q, p, m, is_send, o);
    o->peer = msg_peer(q, m, is_send);
    o->tag = make_tag(q, is_send ? f->c.rank : o->peer, p, m);
    if (o->slot >= 0) q->pipes[p].slot_busy[o->slot] = 1;
    if (is_send && o->slot == 2) {          /* bf16 own term, widened for the fp32 partial sums */
        int32_t b = msg_block(q, m, 1);
        int64_t off, n;
        chunk_of(q, q->pipes[p].chunk, block_len(q, b), &off, &n);
        const uint16_t *src = (const uint16_t *)q->send + block_start(q, b) + off;
        float *dst = o->buf;
        for (int64_t i = 0; i < n; i++) dst[i] = ms_bf16_to_f32(src[i]);
    }
    if (is_send) q->pipes[p].send_posted++;
    else q->pipes[p].recv_posted++;
    return post(f, o);
}

/* Posts every receive and send of pipe p that its dependencies allow. */
static ms_status advance(ms_comm_req *q, int32_t p) {
    pipe_state *s = &q->pipes[p];
    while (s->recv_posted < q->n_recv && s->recv_posted < s->recv_done + LOOKAHEAD) {
        int32_t m = s->recv_posted;
        if (m < q->reduce_msgs && s->slot_busy[m % 2]) break;
        TRY(post_msg(q, p, m, 0));
    }
    /* send m forwards receive m - 1 (broadcast: receive m, off the root) */
    int32_t off = q->kind == MS_COMM_BROADCAST && q->pos > 0 ? 1 : 0;
    while (s->send_posted < q->n_send && s->send_posted - s->send_done < SENDS_IN_FLIGHT &&
           s->recv_done >= s->send_posted + off) {
        TRY(post_msg(q, p, s->send_posted, 1));
    }
    return MS_OK;
}

static void finish_req(ms_comm_req *q);

/* Starts the next chunk on pipe p, if any is left. */
static ms_status pipe_start(ms_comm_req *q, int32_t p) {
    pipe_state *s = &q->pipes[p];
    memset(s, 0, sizeof *s);
    s->chunk = -1;
    if (q->next_chunk >= q->nchunks) return MS_OK;
    s->chunk = q->next_chunk++;
    return advance(q, p);
}

/* A received partial sum (slot) gets this rank's term; the last one becomes the result. */
static void add_f32(float *acc, const float *own, int64_t n) {
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) acc[i] += own[i];
}

static void add_bf16(float *acc, const uint16_t *own, int64_t n) {
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) acc[i] += ms_bf16_to_f32(own[i]);
}

/* out may be own (in place): each element is read before it is written. */
static void sum_f32(float *out, const float *acc, const float *own, int64_t n) {
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) out[i] = acc[i] + own[i];
}

static void sum_bf16(uint16_t *out, const float *acc, const uint16_t *own, int64_t n) {
#pragma GCC ivdep
    for (int64_t i = 0; i < n; i++) out[i] = ms_f32_to_bf16(acc[i] + ms_bf16_to_f32(own[i]));
}

/* A received partial sum (slot) gets this rank's term and goes on; the last
 * one, complete, becomes the result (reduce_scatter) or the block to gather
 * (all_reduce), rounded once. */
static void reduce_recv(ms_comm_req *q, int32_t p, int32_t m) {
    int32_t b = msg_block(q, m, 0);
    int64_t off, n;
    chunk_of(q, q->pipes[p].chunk, block_len(q, b), &off, &n);
    int64_t at = block_start(q, b) + off;
    float *acc = slot_ptr(q, p, m % 2);
    int bf16 = q->dtype == MS_BF16;
    if (m != q->reduce_msgs - 1) {          /* forwarded as message m + 1 */
        if (bf16) add_bf16(acc, (const uint16_t *)q->send + at, n);
        else add_f32(acc, (const float *)q->send + at, n);
        return;
    }
    int64_t out = q->kind == MS_COMM_REDUCE_SCATTER ? off : at;
    if (bf16) sum_bf16((uint16_t *)q->recv + out, acc, (const uint16_t *)q->send + at, n);
    else sum_f32((float *)q->recv + out, acc, (const float *)q->send + at, n);
    q->pipes[p].slot_busy[m % 2] = 0;
}

static ms_status complete(fab *f, op *o) {
    ms_comm_req *q = o->req;
    int32_t p = o->pipe;
    pipe_state *s = &q->pipes[p];
    q->t_last = ms_now();
    if (o->is_send) {
        s->send_done++;
        if (o->slot >= 0) s->slot_busy[o->slot] = 0;
    } else {
        if (o->m < q->reduce_msgs) reduce_recv(q, p, o->m);
        s->recv_seen |= 1u << (o->m - s->recv_done);
        while (s->recv_seen & 1u) {
            s->recv_done++;
            s->recv_seen >>= 1;
        }
    }
    fab_op_put(f, o);
    if (s->recv_done == q->n_recv && s->send_done == q->n_send) {
        q->chunks_done++;
        TRY(pipe_start(q, p));
    } else {
        TRY(advance(q, p));
    }
    if (q->chunks_done == q->nchunks && !q->done) finish_req(q);
    return MS_OK;
}

/* Reads the completion queue once, then retries posts the provider pushed back. */
static ms_status progress(fab *f, int *got) {
    struct fi_cq_entry e[16];
    ssize_t n = fi_cq_read(f->cq, e, 16);
    *got = n > 0 ? (int)n : 0;
    for (ssize_t i = 0; i < n; i++) TRY(complete(f, (op *)e[i].op_context));
    if (n == -FI_EAVAIL) {
        struct fi_cq_err_entry err;
        memset(&err, 0, sizeof err);
        fi_cq_readerr(f->cq, &err, 0);
        op *o = err.op_context;
        char detail[256] = "", name[64] = "?";
        fi_cq_strerror(f->cq, err.prov_errno, err.err_data, detail, sizeof detail);
        if (o) req_name(o->req, name, sizeof name);
        /* a peer that died breaks the transfers of its neighbours: the rendezvous knows which one it was */
        int32_t gone = -1;
        for (double end = ms_now() + 0.5; gone < 0 && ms_now() < end;) {
            gone = ms_boot_gone(f->boot);
            if (gone < 0) {
                struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};
                nanosleep(&ts, NULL);
            }
        }
        if (gone >= 0) return fail_gone(f, name, gone);
        return fail(f, MS_ERR_IO, "%s: %s rank %d failed: %s%s%s%s; it may have died", name,
                    o && o->is_send ? "sending to" : "receiving from", o ? o->peer : -1, fi_err(f, err.err),
                    detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
    }
    if (n < 0 && n != -FI_EAGAIN) return fail(f, MS_ERR_IO, "fabric: reading the completion queue failed: %s", fi_err(f, n));
    while (f->retry_head) {
        op *o = f->retry_head;
        ssize_t rc = o->is_send ? fi_tsend(f->ep, o->buf, o->len, o->desc, f->addr[o->peer], o->tag, &o->ctx)
                                : fi_trecv(f->ep, o->buf, o->len, o->desc, FI_ADDR_UNSPEC, o->tag, 0, &o->ctx);
        if (rc == -FI_EAGAIN) break;
        f->retry_head = o->next;
        if (!f->retry_head) f->retry_tail = NULL;
        if (rc != 0) {
            char name[64];
            return fail(f, MS_ERR_IO, "%s: posting to rank %d failed: %s", req_name(o->req, name, sizeof name),
                        o->peer, fi_err(f, rc));
        }
    }
    return MS_OK;
}

/* --------------------------------------------------------------------------
 * Requests
 * -------------------------------------------------------------------------- */

void fab_unregister(ms_comm_req *q) {
    if (q->mr_send) fi_close(&q->mr_send->fid);
    if (q->mr_recv) fi_close(&q->mr_recv->fid);
    q->mr_send = q->mr_recv = NULL;
    q->desc_send = q->desc_recv = NULL;
}

static void finish_req(ms_comm_req *q) {
    fab *f = q->f;
    q->done = 1;
    fab_unregister(q);
    f->c.stats.calls[q->kind]++;
    f->c.stats.bytes[q->kind] += q->bytes;
    f->c.stats.seconds[q->kind] += ms_now() - q->t_start;
}

ms_status fab_register(fab *f, const void *buf, size_t len, struct fid_mr **mr, void **desc) {
    int rc = fi_mr_reg(f->domain, buf, len, FI_SEND | FI_RECV, 0, f->next_key++, 0, mr, NULL);
    if (rc == 0 && f->mr_endpoint) {
        rc = fi_mr_bind(*mr, &f->ep->fid, 0);
        if (rc == 0) rc = fi_mr_enable(*mr);
    }
    if (rc != 0) {
        if (*mr) fi_close(&(*mr)->fid);
        *mr = NULL;
        return ms_fail(MS_ERR_IO, "fabric: registering %zu bytes with %s failed: %s", len, f->provider, fi_err(f, rc));
    }
    *desc = fi_mr_desc(*mr);
    return MS_OK;
}

/* Takes a request from the pool and sets up its chunks. */
static ms_status start(fab *f, int kind, const void *send, void *recv, int64_t count, int32_t dtype, int32_t root,
                       ms_comm_req **out) {
    const char *what = ms_comm_kind_name(kind);
    TRY(refuse_if_failed(f, what));
    ms_comm_req *q = NULL;
    for (int i = 0; i < N_REQS && !q; i++)
        if (!f->reqs[i].in_use) q = &f->reqs[i];
    if (!q)
        return ms_fail(MS_ERR_STATE, "%s: all %d requests of the communicator are in flight; wait for some before "
                       "starting more", what, N_REQS);
    float *slots = q->slots;
    memset(q, 0, sizeof *q);
    q->slots = slots;
    q->f = f;
    q->kind = kind;
    q->dtype = dtype;
    q->in_use = 1;
    q->seq = ++f->seq;
    q->root = root;
    q->send = send;
    q->recv = recv;
    q->count = count;
    q->t_start = q->t_last = ms_now();
    int32_t w = f->c.world, r = f->c.rank;
    q->esize = kind == MS_COMM_BROADCAST ? 1 : ms_comm_elem_size(dtype);
    int64_t longest = count;                 /* the longest block, in elements */
    switch (kind) {
    case MS_COMM_ALL_GATHER:
        q->n_msgs = q->n_recv = q->n_send = w - 1;
        q->chunk = f->chunk_bytes / q->esize;
        q->bytes = count * w * q->esize;
        break;
    case MS_COMM_REDUCE_SCATTER:
        q->n_msgs = q->n_recv = q->n_send = q->reduce_msgs = w - 1;
        q->chunk = f->slot_elems;
        q->bytes = count * w * q->esize;
        break;
    case MS_COMM_ALL_REDUCE:
        q->n_msgs = q->n_recv = q->n_send = 2 * (w - 1);
        q->reduce_msgs = w - 1;
        q->chunk = f->slot_elems;
        longest = count / w + (count % w != 0);
        q->bytes = count * q->esize;
        break;
    case MS_COMM_BROADCAST:
        q->pos = wrap(r - root, w);
        q->n_msgs = 1;
        q->n_recv = q->pos > 0;
        q->n_send = q->pos < w - 1;
        q->chunk = f->chunk_bytes;
        q->bytes = count;
        break;
    case MS_COMM_BARRIER:
        q->n_msgs = 0;
        while (((int64_t)1 << q->n_msgs) < w) q->n_msgs++;
        q->n_recv = q->n_send = q->n_msgs;
        q->chunk = 1;
        longest = 1;
        break;
    }
    q->nchunks = longest > 0 ? (longest + q->chunk - 1) / q->chunk : 0;
    if (kind == MS_COMM_BARRIER) q->nchunks = 1;
    if (q->nchunks * q->n_msgs >= ((int64_t)1 << INDEX_BITS)) {
        if (q->reduce_msgs) {
            q->in_use = 0;
            return ms_fail(MS_ERR_INVALID, "%s: %lld elements make %lld chunks of %lld, more than one collective can "
                           "number; split it into calls of at most %lld elements", what, (long long)count,
                           (long long)q->nchunks, (long long)q->chunk,
                           (long long)(((int64_t)1 << INDEX_BITS) / q->n_msgs * q->chunk));
        }
        int64_t most = ((int64_t)1 << INDEX_BITS) / q->n_msgs - 1;
        q->chunk = (longest + most - 1) / most;
        q->nchunks = (longest + q->chunk - 1) / q->chunk;
    }
    if (f->register_buffers && count > 0 && kind != MS_COMM_BARRIER) {
        int64_t send_len = kind == MS_COMM_REDUCE_SCATTER ? count * w : count;
        int64_t recv_len = kind == MS_COMM_ALL_GATHER ? count * w : count;
        ms_status st = fab_register(f, recv, (size_t)(recv_len * q->esize), &q->mr_recv, &q->desc_recv);
        if (st == MS_OK && kind != MS_COMM_BROADCAST)
            st = fab_register(f, send, (size_t)(send_len * q->esize), &q->mr_send, &q->desc_send);
        if (st != MS_OK) {
            fab_unregister(q);
            q->in_use = 0;
            return ms_fail_context(st, "%s", what);
        }
    }
    /* all_gather out of place: this rank's own block */
    if (kind == MS_COMM_ALL_GATHER && count > 0 && (const char *)send != (char *)recv + r * count * q->esize)
        memcpy((char *)recv + r * count * q->esize, send, (size_t)(count * q->esize));
    *out = q;
    if (q->nchunks == 0) {                   /* nothing to move: done, no request to wait for */
        finish_req(q);
        q->in_use = 0;
        *out = NULL;
        return MS_OK;
    }
    for (int32_t p = 0; p < N_PIPES; p++) {
        ms_status st = pipe_start(q, p);
        if (st != MS_OK) return st;
    }
    return MS_OK;
}

/* The peers a request still waits on, as "rank 2" or "ranks 1, 3". */
static void waiting_on(const ms_comm_req *q, int receiving, char *dst, size_t len) {
    int32_t w = q->f->c.world;
    char *seen = calloc((size_t)w, 1);
    dst[0] = '\0';
    if (!seen) return;
    int n = 0;
    for (int32_t p = 0; p < N_PIPES; p++) {
        const pipe_state *s = &q->pipes[p];
        if (s->chunk < 0) continue;
        int32_t m = receiving ? s->recv_done : s->send_done;
        int32_t lim = receiving ? q->n_recv : q->n_send;
        if (m >= lim) continue;
        int32_t peer = msg_peer(q, m, !receiving);
        if (seen[peer]) continue;
        seen[peer] = 1;
        size_t used = strlen(dst);
        snprintf(dst + used, len - used, "%s%d", n ? ", " : "", peer);
        n++;
    }
    if (n == 0 && receiving && q->chunks_done < q->nchunks && q->n_recv > 0) {
        snprintf(dst, len, "%d", msg_peer(q, 0, 0));
        n = 1;
    }
    free(seen);
    if (n > 1) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "ranks %s", dst);
        snprintf(dst, len, "%s", tmp);
    } else if (n == 1) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "rank %s", dst);
        snprintf(dst, len, "%s", tmp);
    }
}

ms_status fab_wait(ms_comm *c, ms_comm_req *q) {
    if (!q) return MS_OK;
    fab *f = c->impl;
    if (q < f->reqs || q >= f->reqs + N_REQS || !q->in_use)
        return ms_fail(MS_ERR_INVALID, "wait: %p is not a request in flight on this communicator", (void *)q);
    char name[64];
    req_name(q, name, sizeof name);
    double entered = ms_now(), last_check = entered;
    long idle = 0;
    ms_status st = MS_OK;
    while (!q->done) {
        if (f->failed) {
            st = ms_fail(MS_ERR_IO, "%s", f->failure);
            break;
        }
        int got = 0;
        st = progress(f, &got);
        if (st != MS_OK || q->done) break;
        if (got) {
            idle = 0;
            continue;
        }
        if (++idle < 64) continue;
        double now = ms_now();
        if (now - last_check >= 0.001) {
            last_check = now;
            int32_t gone = ms_boot_gone(f->boot);
            if (gone >= 0) {
                st = fail_gone(f, name, gone);
                break;
            }
            double since = q->t_last > entered ? q->t_last : entered;
            if (now - since > c->timeout_ms / 1000.0) {
                char peers[256];
                waiting_on(q, 1, peers, sizeof peers);
                if (peers[0]) {
                    st = fail(f, MS_ERR_IO, "%s: no message from %s in %.1f s; it may have died or be stuck", name,
                              peers, now - since);
                } else {
                    waiting_on(q, 0, peers, sizeof peers);
                    st = fail(f, MS_ERR_IO, "%s: %s took none of our messages in %.1f s; it may have died or be stuck",
                              name, peers[0] ? peers : "no peer", now - since);
                }
                break;
            }
        }
        /* nothing arrived for a while: let the other ranks on this host run */
        if (idle < 2000) {
            sched_yield();
        } else {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000};
            nanosleep(&ts, NULL);
        }
    }
    if (q->done) q->in_use = 0;
    return st;
}

/* --------------------------------------------------------------------------
 * The collectives
 * -------------------------------------------------------------------------- */

ms_status fab_all_gather(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_ALL_GATHER, send, recv, count, dtype, req));
    return start(c->impl, MS_COMM_ALL_GATHER, send, recv, count, dtype, 0, req);
}

ms_status fab_reduce_scatter(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                    ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_REDUCE_SCATTER, send, recv, count, dtype, req));
    return start(c->impl, MS_COMM_REDUCE_SCATTER, send, recv, count, dtype, 0, req);
}

ms_status fab_all_reduce(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                                ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_ALL_REDUCE, send, recv, count, dtype, req));
    return start(c->impl, MS_COMM_ALL_REDUCE, send, recv, count, dtype, 0, req);
}

ms_status fab_broadcast(ms_comm *c, void *buf, int64_t bytes, int32_t root, ms_comm_req **req) {
    TRY(ms_comm_check(c, MS_COMM_BROADCAST, buf, buf, bytes, MS_F32, req));
    if (root < 0 || root >= c->world)
        return ms_fail(MS_ERR_INVALID, "broadcast: root %d is not a rank of a world of %d", root, c->world);
    return start(c->impl, MS_COMM_BROADCAST, buf, buf, bytes, MS_F32, root, req);
}

ms_status fab_progress(ms_comm *c) {
    fab *f = c->impl;
    TRY(refuse_if_failed(f, "progress"));
    for (int i = 0; i < 4; i++) {
        int got = 0;
        TRY(progress(f, &got));
        if (!got) break;
    }
    return MS_OK;
}

ms_status fab_barrier(ms_comm *c) {
    if (!c) return ms_fail(MS_ERR_INVALID, "barrier: the communicator is NULL");
    ms_comm_req *q = NULL;
    TRY(start(c->impl, MS_COMM_BARRIER, NULL, NULL, 1, MS_F32, 0, &q));
    return fab_wait(c, q);
}
