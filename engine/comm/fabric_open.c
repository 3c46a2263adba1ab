/*
 * comm/fabric_open.c — the fabric communicator's life: libfabric, the
 * provider, the endpoint, the address vector, the staging; create and destroy.
 *
 * libfabric is opened with dlopen("libfabric.so.1"), so the EFA installer's
 * copy is the one used on AWS and its absence is an error that says so. Only
 * the library's few real functions are looked up (fi_getinfo, fi_freeinfo,
 * fi_dupinfo, fi_fabric, fi_strerror, fi_version); everything else in its API
 * is an inline wrapper over the ops tables of the objects they return.
 *
 * Create: rendezvous (bootstrap.c); rank 0 chooses the provider (the argument,
 * else FI_PROVIDER, else efa when present, shm when every rank is on its host,
 * else tcp;ofi_rxm) and tells the others; each rank opens an RDM endpoint with
 * tagged messages, the ranks swap endpoint names through the rendezvous, and
 * one barrier proves every neighbour reachable. The hints ask for every
 * memory-registration mode and the code obeys the subset the provider keeps.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "comm/fabric_impl.h"
#include "core/status.h"

/* --------------------------------------------------------------------------
 * Create and destroy
 * -------------------------------------------------------------------------- */

static void fab_close(fab *f) {
    if (f->ep) fi_close(&f->ep->fid);
    for (int i = 0; i < N_REQS; i++) fab_unregister(&f->reqs[i]);
    if (f->slot_mr) fi_close(&f->slot_mr->fid);
    if (f->av) fi_close(&f->av->fid);
    if (f->cq) fi_close(&f->cq->fid);
    if (f->domain) fi_close(&f->domain->fid);
    if (f->fabric) fi_close(&f->fabric->fid);
    if (f->info) f->freeinfo(f->info);
    f->ep = NULL;
    f->slot_mr = NULL;
    f->av = NULL;
    f->cq = NULL;
    f->domain = NULL;
    f->fabric = NULL;
    f->info = NULL;
}

static void fab_destroy(ms_comm *c) {
    if (!c) return;
    fab *f = c->impl;
    ms_boot_close(f->boot);   /* goodbye: every rank is done with its endpoint */
    if (f->failed) {
        /* Operations to a dead peer may still be posted, and closing an endpoint
         * in that state can crash the provider (tcp;ofi_rxm 1.17 does). Nothing
         * drives it any more: leave it, the staging and the contexts it may
         * still point at, to the end of the process; only take the name of
         * this rank's shared memory (shm) off /dev/shm. */
        fab_remove_region(f, c->rank);
        free(f->addr);
        free(f->names);
        return;
    }
    fab_close(f);
    free(f->addr);
    free(f->names);
    free(f->slot_mem);
    free(f);
}

static ms_status load_library(fab *f) {
    const char *name = getenv("MS_FABRIC_LIBRARY");   /* another libfabric, by name or path */
    if (!name || !*name) name = "libfabric.so.1";
    f->lib = dlopen(name, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!f->lib)
        return ms_fail(MS_ERR_IO,
                       "the fabric communicator needs libfabric (%s), which cannot be loaded: %s; install the "
                       "libfabric1 package (Debian, Ubuntu) or the EFA installer (AWS), or put its folder on "
                       "LD_LIBRARY_PATH",
                       name, dlerror());
    struct { const char *name; void **fn; } syms[] = {
        {"fi_getinfo", (void **)&f->getinfo},   {"fi_freeinfo", (void **)&f->freeinfo},
        {"fi_dupinfo", (void **)&f->dupinfo},   {"fi_fabric", (void **)&f->open_fabric},
        {"fi_strerror", (void **)&f->strerror}, {"fi_version", (void **)&f->version},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        *syms[i].fn = dlsym(f->lib, syms[i].name);
        if (!*syms[i].fn)
            return ms_fail(MS_ERR_IO, "libfabric.so.1 has no %s; it is not a libfabric this build can use", syms[i].name);
    }
    uint32_t v = f->version();
    if (FI_MAJOR(v) < 1 || (FI_MAJOR(v) == 1 && FI_MINOR(v) < 17))
        return ms_fail(MS_ERR_IO, "libfabric %u.%u is too old: the fabric communicator needs 1.17 or newer",
                       FI_MAJOR(v), FI_MINOR(v));
    return MS_OK;
}

static struct fi_info *make_hints(fab *f, const char *provider) {
    struct fi_info *h = f->dupinfo(NULL);
    if (!h) return NULL;
    h->caps = FI_TAGGED | FI_SEND | FI_RECV;
    h->mode = FI_CONTEXT | FI_CONTEXT2;
    h->ep_attr->type = FI_EP_RDM;
    h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    h->domain_attr->threading = FI_THREAD_DOMAIN;
    if (provider) h->fabric_attr->prov_name = strdup(provider);
    return h;
}

/* 1 when libfabric offers provider with RDM + tagged messages here. */
static int provider_works(fab *f, const char *provider) {
    struct fi_info *h = make_hints(f, provider), *info = NULL;
    if (!h) return 0;
    int rc = f->getinfo(FAB_API, NULL, NULL, 0, h, &info);
    f->freeinfo(h);
    if (info) f->freeinfo(info);
    return rc == 0;
}

/* The providers with RDM + tagged messages here, as "shm, tcp;ofi_rxm, ...". */
static void list_providers(fab *f, char *dst, size_t len) {
    dst[0] = '\0';
    struct fi_info *h = make_hints(f, NULL), *info = NULL;
    if (!h) return;
    if (f->getinfo(FAB_API, NULL, NULL, 0, h, &info) == 0) {
        for (struct fi_info *i = info; i; i = i->next) {
            const char *name = i->fabric_attr->prov_name;
            if (!name || strstr(dst, name)) continue;
            size_t used = strlen(dst);
            snprintf(dst + used, len - used, "%s%s", used ? ", " : "", name);
        }
    }
    f->freeinfo(h);
    if (info) f->freeinfo(info);
    if (!dst[0]) snprintf(dst, len, "none");
}

/* Rank 0's choice: the argument, else FI_PROVIDER, else efa when present, shm
 * when every rank is on this host, else tcp;ofi_rxm. */
static void choose_provider(fab *f, const char *asked, char *out, size_t len) {
    const char *env = getenv("FI_PROVIDER");
    if (asked && *asked) snprintf(out, len, "%s", asked);
    else if (env && *env) snprintf(out, len, "%s", env);
    else if (provider_works(f, "efa")) snprintf(out, len, "efa");
    else if (ms_boot_all_on_this_host(f->boot)) snprintf(out, len, "shm");
    else snprintf(out, len, "tcp;ofi_rxm");
}

static ms_status open_endpoint(fab *f, const ms_world *w) {
    struct fi_info *h = make_hints(f, f->provider);
    if (!h) return ms_fail(MS_ERR_NOMEM, "fabric: fi_dupinfo failed");
    const char *node = NULL;
    uint64_t flags = 0;
    /* a job on the loopback stays on it (tcp would otherwise pick a network interface) */
    if ((strncmp(w->master_addr, "127.", 4) == 0 || strcmp(w->master_addr, "localhost") == 0) &&
        strcmp(f->provider, "shm") != 0 && strcmp(f->provider, "efa") != 0) {
        node = "127.0.0.1";
        flags = FI_SOURCE;
    }
    int rc = f->getinfo(FAB_API, node, NULL, flags, h, &f->info);
    f->freeinfo(h);
    if (rc != 0) {
        f->info = NULL;
        char have[256];
        list_providers(f, have, sizeof have);
        return ms_fail(MS_ERR_IO,
                       "libfabric offers no provider \"%s\" with reliable tagged messages (FI_EP_RDM, FI_TAGGED) "
                       "here: %s; providers that do: %s",
                       f->provider, f->strerror(-rc), have);
    }
    /* the name libfabric gives what it found ("tcp" finds "tcp;ofi_rxm") */
    if (f->info->fabric_attr && f->info->fabric_attr->prov_name)
        snprintf(f->provider, sizeof f->provider, "%s", f->info->fabric_attr->prov_name);
    uint64_t mr_mode = (uint64_t)f->info->domain_attr->mr_mode;
    const char *force = getenv("MS_FABRIC_REGISTER");
    f->register_buffers = (mr_mode & FI_MR_LOCAL) || (force && strcmp(force, "1") == 0);
    f->mr_endpoint = (mr_mode & FI_MR_ENDPOINT) != 0;
    f->next_key = 1;
    const char *stage = "fi_fabric";
    rc = f->open_fabric(f->info->fabric_attr, &f->fabric, NULL);
    if (rc == 0) {
        stage = "fi_domain";
        rc = fi_domain(f->fabric, f->info, &f->domain, NULL);
    }
    if (rc == 0) {
        stage = "fi_av_open";
        struct fi_av_attr av = {.type = FI_AV_TABLE, .count = (size_t)w->world};
        rc = fi_av_open(f->domain, &av, &f->av, NULL);
    }
    if (rc == 0) {
        stage = "fi_cq_open";
        struct fi_cq_attr cq = {.format = FI_CQ_FORMAT_CONTEXT, .wait_obj = FI_WAIT_NONE, .size = 4 * N_OPS};
        rc = fi_cq_open(f->domain, &cq, &f->cq, NULL);
    }
    if (rc == 0) {
        stage = "fi_endpoint";
        rc = fi_endpoint(f->domain, f->info, &f->ep, NULL);
    }
    if (rc == 0) {
        stage = "fi_ep_bind";
        rc = fi_ep_bind(f->ep, &f->av->fid, 0);
        if (rc == 0) rc = fi_ep_bind(f->ep, &f->cq->fid, FI_TRANSMIT | FI_RECV);
    }
    if (rc == 0) {
        stage = "fi_enable";
        rc = fi_enable(f->ep);
    }
    if (rc != 0)
        return ms_fail(MS_ERR_IO, "fabric: opening an endpoint of provider %s failed at %s: %s", f->provider, stage,
                       f->strerror(-rc));
    return MS_OK;
}

/* Every rank's endpoint name through the rendezvous, into the address vector. */
static ms_status exchange_names(fab *f) {
    int32_t w = f->c.world;
    enum { REC = NAME_REC };
    uint8_t mine[REC];
    memset(mine, 0, sizeof mine);
    size_t len = NAME_MAX_LEN;
    int rc = fi_getname(&f->ep->fid, mine + 4, &len);
    if (rc != 0)
        return ms_fail(MS_ERR_IO, "fabric: the endpoint name of provider %s does not fit %d bytes: %s", f->provider,
                       NAME_MAX_LEN, f->strerror(-rc));
    uint32_t l32 = (uint32_t)len;
    memcpy(mine, &l32, 4);
    uint8_t *all = malloc((size_t)w * REC);
    f->addr = calloc((size_t)w, sizeof *f->addr);
    if (!all || !f->addr) {
        free(all);
        return ms_fail(MS_ERR_NOMEM, "fabric: out of memory for %d endpoint names", w);
    }
    ms_status st = ms_boot_allgather(f->boot, mine, REC, all);
    for (int32_t r = 0; r < w && st == MS_OK; r++) {
        uint8_t *rec = all + (size_t)r * REC;
        /* names may differ in length (a provider's text names carry a process id): each is
           NUL-padded in its record, and the provider reads what it wrote */
        uint32_t n;
        memcpy(&n, rec, 4);
        if (n == 0 || n > NAME_MAX_LEN) {
            st = ms_fail(MS_ERR_IO, "fabric: rank %d sent an endpoint name of %u bytes; expected 1 to %d", r, n,
                         NAME_MAX_LEN);
            break;
        }
        rc = fi_av_insert(f->av, rec + 4, 1, &f->addr[r], 0, NULL);
        if (rc != 1)
            st = ms_fail(MS_ERR_IO, "fabric: adding rank %d's endpoint (host %s, a name of %u bytes; this rank's has "
                         "%u) to the address vector of provider %s failed: %s; do the ranks use the same provider?",
                         r, ms_boot_host(f->boot, r), n, l32, f->provider, rc < 0 ? f->strerror(-rc) : "not inserted");
    }
    f->names = all;
    return st;
}

static ms_status reserve_staging(fab *f) {
    const char *env = getenv("MS_FABRIC_CHUNK");   /* one chunk size for all (specs use small ones) */
    int64_t slot = DEFAULT_SLOT, chunk = DEFAULT_CHUNK;
    if (env && *env) {
        char *end = NULL;
        long long v = strtoll(env, &end, 10);
        if (*end != '\0' || v < 4096 || v > (64 << 20))
            return ms_fail(MS_ERR_INVALID, "MS_FABRIC_CHUNK=%s is not a number of bytes in [4096, 67108864]", env);
        slot = chunk = v & ~(long long)7;
    }
    f->chunk_bytes = chunk;
    f->slot_elems = slot / (int64_t)sizeof(float);
    size_t per_req = (size_t)N_PIPES * N_SLOTS * (size_t)f->slot_elems;
    size_t bytes = (size_t)N_REQS * per_req * sizeof(float);
    f->slot_mem = aligned_alloc(64, bytes);
    if (!f->slot_mem) return ms_fail(MS_ERR_NOMEM, "fabric: cannot reserve %zu bytes of staging", bytes);
    for (int i = 0; i < N_REQS; i++) f->reqs[i].slots = f->slot_mem + (size_t)i * per_req;
    for (int i = 0; i < N_OPS; i++) fab_op_put(f, &f->ops[i]);
    if (f->register_buffers) TRY(fab_register(f, f->slot_mem, bytes, &f->slot_mr, &f->slot_desc));
    return MS_OK;
}

static ms_status setup(fab *f, const ms_world *w, const char *provider, int32_t timeout_ms) {
    TRY(load_library(f));
    int32_t rendezvous_ms = w->rendezvous_ms > 0 ? w->rendezvous_ms : timeout_ms;
    TRY(ms_boot_connect(w, rendezvous_ms, NULL, &f->boot));
    char chosen[64] = "";
    if (w->rank == 0) choose_provider(f, provider, chosen, sizeof chosen);
    TRY(ms_boot_bcast(f->boot, chosen, sizeof chosen));
    chosen[sizeof chosen - 1] = '\0';
    snprintf(f->provider, sizeof f->provider, "%s", chosen);
    TRY(open_endpoint(f, w));
    TRY(exchange_names(f));
    TRY(reserve_staging(f));
    TRY(ms_boot_watch(f->boot));
    /* one barrier proves that every pair of neighbours can talk */
    ms_status st = fab_barrier(&f->c);
    if (st != MS_OK) return ms_fail_context(st, "the first barrier over %s", f->provider);
    memset(&f->c.stats, 0, sizeof f->c.stats);
    return MS_OK;
}

ms_status ms_fabric_create(const ms_world *w, const char *provider, int32_t timeout_ms, ms_comm **out) {
    fab *f = calloc(1, sizeof *f);
    if (!f) return ms_fail(MS_ERR_NOMEM, "fabric: out of memory");
    f->c = (ms_comm){.name = "fabric", .rank = w->rank, .world = w->world, .timeout_ms = timeout_ms, .impl = f,
                     .all_gather = fab_all_gather, .reduce_scatter = fab_reduce_scatter,
                     .all_reduce = fab_all_reduce, .broadcast = fab_broadcast, .barrier = fab_barrier,
                     .wait = fab_wait, .destroy = fab_destroy, .provider = f->provider,
                     .progress = fab_progress};
    ms_status st = setup(f, w, provider, timeout_ms);
    if (st != MS_OK) {
        ms_fail_context(st, "creating the fabric communicator (rank %d of %d)", w->rank, w->world);
        ms_boot_abort(f->boot);
        fab_close(f);
        free(f->addr);
        free(f->names);
        free(f->slot_mem);
        free(f);
        return st;
    }
    *out = &f->c;
    return MS_OK;
}
