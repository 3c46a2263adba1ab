/*
 * comm/fabric_impl.h — the fabric communicator's state, shared by fabric.c
 * (the collectives) and fabric_open.c (libfabric, the endpoint, create and
 * destroy). Internal to engine/comm.
 */
#ifndef MS_COMM_FABRIC_IMPL_H
#define MS_COMM_FABRIC_IMPL_H
#include <stddef.h>
#include <stdint.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>

#include "comm/bootstrap.h"
#include "comm/fabric.h"

#define FAB_API FI_VERSION(1, 17)

enum {
    N_REQS = 8,            /* requests in flight per communicator */
    N_PIPES = 4,           /* chunks in flight per request */
    N_SLOTS = 3,           /* staging per pipeline: two receive buffers, one bf16 -> fp32 send */
    LOOKAHEAD = 2,         /* receives posted ahead per pipeline */
    SENDS_IN_FLIGHT = 2,   /* sends outstanding per pipeline */
    N_OPS = N_REQS * N_PIPES * (LOOKAHEAD + SENDS_IN_FLIGHT),
    NAME_MAX_LEN = 252,    /* endpoint name bytes */
    NAME_REC = NAME_MAX_LEN + 4,
    DEFAULT_SLOT = 256 << 10,      /* bytes per chunk of the reducing collectives (staged) */
    DEFAULT_CHUNK = 1 << 20,       /* bytes per chunk of the others (straight from user buffers) */
};

#define SEQ_BITS 20
#define SENDER_BITS 16
#define INDEX_BITS 24

typedef struct fab fab;
typedef struct op op;

struct op {
    struct fi_context2 ctx;   /* first member: the completion hands back its address */
    ms_comm_req *req;
    int32_t pipe, m;
    int8_t is_send, slot;     /* slot: the staging slot it fills or drains, -1 none */
    void *buf;                /* what was (or is to be) posted */
    size_t len;
    void *desc;
    int32_t peer;
    uint64_t tag;
    op *next;                 /* the free list, or the queue of posts to retry */
};

typedef struct pipe_state {
    int64_t chunk;            /* -1: idle */
    int32_t recv_posted, recv_done, send_posted, send_done;
    uint32_t recv_seen;       /* bit i: receive recv_done + i completed */
    int8_t slot_busy[N_SLOTS];
} pipe_state;

struct ms_comm_req {
    fab *f;
    int32_t kind, dtype, in_use, done;
    uint32_t seq;             /* this communicator's collective number, from 1 */
    int32_t root, pos;        /* broadcast: root and this rank's place in the chain */
    const char *send;
    char *recv;
    int64_t count;            /* elements per rank; bytes for broadcast */
    int64_t esize;            /* bytes per element (1 for broadcast) */
    int64_t chunk;            /* elements per chunk */
    int64_t nchunks, next_chunk, chunks_done;
    int32_t n_msgs, n_recv, n_send, reduce_msgs;  /* per chunk; the first reduce_msgs use slots */
    int64_t bytes;            /* the collective's size for the counters */
    double t_start, t_last;
    pipe_state pipes[N_PIPES];
    float *slots;             /* (N_PIPES, N_SLOTS, slot_elems) */
    struct fid_mr *mr_send, *mr_recv;
    void *desc_send, *desc_recv;
};

struct fab {
    ms_comm c;
    ms_boot *boot;
    /* libfabric */
    void *lib;
    int (*getinfo)(uint32_t, const char *, const char *, uint64_t, const struct fi_info *, struct fi_info **);
    void (*freeinfo)(struct fi_info *);
    struct fi_info *(*dupinfo)(const struct fi_info *);
    int (*open_fabric)(struct fi_fabric_attr *, struct fid_fabric **, void *);
    const char *(*strerror)(int);
    uint32_t (*version)(void);
    struct fi_info *info;
    struct fid_fabric *fabric;
    struct fid_domain *domain;
    struct fid_av *av;
    struct fid_cq *cq;
    struct fid_ep *ep;
    fi_addr_t *addr;          /* (world) */
    uint8_t *names;           /* (world, NAME_REC): every rank's endpoint name, length first */
    int register_buffers;     /* FI_MR_LOCAL, or forced by MS_FABRIC_REGISTER=1 */
    int mr_endpoint;
    uint64_t next_key;
    /* staging */
    float *slot_mem;          /* (N_REQS, N_PIPES, N_SLOTS, slot_elems) */
    int64_t slot_elems, chunk_bytes;
    struct fid_mr *slot_mr;
    void *slot_desc;
    char dummy[8];
    /* requests and operations */
    uint32_t seq;
    ms_comm_req reqs[N_REQS];
    op ops[N_OPS];
    op *free_ops, *retry_head, *retry_tail;
    int failed;
    char failure[1024];
    char provider[64];
};

/* fabric.c */
ms_status fab_all_gather(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype, ms_comm_req **req);
ms_status fab_reduce_scatter(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype,
                             ms_comm_req **req);
ms_status fab_all_reduce(ms_comm *c, const void *send, void *recv, int64_t count, int32_t dtype, ms_comm_req **req);
ms_status fab_broadcast(ms_comm *c, void *buf, int64_t bytes, int32_t root, ms_comm_req **req);
ms_status fab_barrier(ms_comm *c);
ms_status fab_wait(ms_comm *c, ms_comm_req *req);
ms_status fab_progress(ms_comm *c);
void fab_op_put(fab *f, op *o);
void fab_unregister(ms_comm_req *q);
void fab_remove_region(fab *f, int32_t rank);
ms_status fab_register(fab *f, const void *buf, size_t len, struct fid_mr **mr, void **desc);

#endif
