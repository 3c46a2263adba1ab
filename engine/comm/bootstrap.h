/*
 * comm/bootstrap.h — how ranks meet: a TCP rendezvous at the master (internal).
 *
 * Rank 0 listens on MS_MASTER_PORT; every other rank connects (retrying while
 * the master's name does not resolve yet or it refuses connections) and says
 * who it is: job token, rank, world, hostname. Rank 0 refuses a wrong token,
 * a wrong world or a rank that has already joined (the refused process fails
 * with rank 0's reason; rank 0 keeps waiting for the right one), and at the
 * deadline fails naming the ranks that never came. Then it sends everyone the
 * table: every rank's hostname and a blob of rank 0's (reserved for the NCCL
 * unique id).
 *
 * The connections stay open for the communicator's lifetime:
 *   - before ms_boot_watch, ms_boot_allgather/ms_boot_bcast exchange small
 *     blobs (libfabric endpoint names, the provider rank 0 chose);
 *   - after it, they tell who is gone: rank 0 watches every connection on a
 *     thread, and when one closes without a goodbye (the process died) it tells
 *     the others, so a collective waiting on a dead rank fails naming it;
 *   - ms_boot_close says goodbye: every rank waits (up to the deadline) until
 *     all have said it, so nobody tears down its endpoint while a peer still
 *     needs it.
 */
#ifndef MS_COMM_BOOTSTRAP_H
#define MS_COMM_BOOTSTRAP_H
#include <stdint.h>

#include "comm/comm.h"

enum { MS_BOOT_HOST_LEN = 256, MS_BOOT_ROOT_BLOB = 128 };

typedef struct ms_boot ms_boot;

/* Rendezvous of world w (world >= 2) within timeout_ms. root_blob
 * (MS_BOOT_ROOT_BLOB bytes, NULL = zeros) is rank 0's, copied to everyone. */
ms_status ms_boot_connect(const ms_world *w, int32_t timeout_ms, const void *root_blob, ms_boot **out);

const char *ms_boot_host(const ms_boot *b, int32_t rank);
const uint8_t *ms_boot_root_blob(const ms_boot *b);
int ms_boot_all_on_this_host(const ms_boot *b);
/* "127.0.0.1:29500" */
const char *ms_boot_where(const ms_boot *b);

/* Before ms_boot_watch only. all = world * len bytes, rank order. */
ms_status ms_boot_allgather(ms_boot *b, const void *mine, int32_t len, void *all);
/* buf (len bytes) of rank 0 everywhere. */
ms_status ms_boot_bcast(ms_boot *b, void *buf, int32_t len);

/* Start telling who is gone (rank 0: a watcher thread). */
ms_status ms_boot_watch(ms_boot *b);
/* A rank that is gone (died without a goodbye), or -1; never blocks. */
int32_t ms_boot_gone(ms_boot *b);

/* Goodbye (waits up to the deadline for everyone's), then close. NULL: no-op. */
void ms_boot_close(ms_boot *b);
/* Close at once, without a goodbye: the others see this rank leave (setup failed). */
void ms_boot_abort(ms_boot *b);

#endif
