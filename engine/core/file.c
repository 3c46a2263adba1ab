/* core/file.c — atomic writes and exact reads (see file.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/status.h"

static int write_all(int fd, const void *p, int64_t n) {
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, (size_t)n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        b += w;
        n -= w;
    }
    return 0;
}

ms_status ms_write_atomic(const char *what, const char *path, const ms_span *spans, int n_spans) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return ms_fail(MS_ERR_INVALID, "%s %s: path too long", what, path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return ms_fail(MS_ERR_IO, "%s %s: cannot create %s: %s", what, path, tmp, strerror(errno));
    int bad = 0;
    for (int i = 0; i < n_spans && !bad; i++) bad = write_all(fd, spans[i].data, spans[i].bytes) != 0;
    if (!bad) bad = fsync(fd) != 0;
    int err = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        return ms_fail(MS_ERR_IO, "%s %s: write failed: %s; the previous file (if any) is unchanged", what, path,
                       strerror(err));
    }
    return MS_OK;
}

ms_status ms_read_exact(const char *what, const char *path, int fd, void *dst, int64_t bytes) {
    uint8_t *b = dst;
    while (bytes > 0) {
        ssize_t r = read(fd, b, (size_t)bytes);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ms_fail(MS_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        if (r == 0) return ms_fail(MS_ERR_FORMAT, "%s %s: the file ends early; it is truncated", what, path);
        b += r;
        bytes -= r;
    }
    return MS_OK;
}
