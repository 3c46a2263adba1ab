/* core/file.c — atomic writes and exact reads (see file.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

ms_status ms_file_begin(ms_file_out *f, const char *what, const char *path) {
    f->what = what;
    f->fd = -1;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path ||
        snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof f->tmp)
        return ms_fail(MS_ERR_INVALID, "%s %s: path too long", what, path);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) return ms_fail(MS_ERR_IO, "%s %s: cannot create %s: %s", what, path, f->tmp, strerror(errno));
    return MS_OK;
}

static ms_status fail_abort(ms_file_out *f, int err) {
    ms_file_abort(f);
    return ms_fail(MS_ERR_IO, "%s %s: write failed: %s; the previous file (if any) is unchanged", f->what,
                   f->path, strerror(err));
}

ms_status ms_file_write(ms_file_out *f, const void *data, int64_t bytes) {
    if (f->fd < 0) return ms_fail(MS_ERR_STATE, "%s %s: writing to a file that is not open", f->what, f->path);
    if (write_all(f->fd, data, bytes) != 0) return fail_abort(f, errno);
    return MS_OK;
}

ms_status ms_file_commit(ms_file_out *f) {
    if (f->fd < 0) return ms_fail(MS_ERR_STATE, "%s %s: committing a file that is not open", f->what, f->path);
    if (fsync(f->fd) != 0) return fail_abort(f, errno);
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0 || rename(f->tmp, f->path) != 0) {
        int err = errno;
        unlink(f->tmp);
        return ms_fail(MS_ERR_IO, "%s %s: write failed: %s; the previous file (if any) is unchanged", f->what,
                       f->path, strerror(err));
    }
    return MS_OK;
}

void ms_file_abort(ms_file_out *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    unlink(f->tmp);
}

ms_status ms_write_atomic(const char *what, const char *path, const ms_span *spans, int n_spans) {
    ms_file_out f;
    TRY(ms_file_begin(&f, what, path));
    for (int i = 0; i < n_spans; i++) TRY(ms_file_write(&f, spans[i].data, spans[i].bytes));
    return ms_file_commit(&f);
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

ms_status ms_read_exact_at(const char *what, const char *path, int fd, void *dst, int64_t bytes, int64_t at) {
    uint8_t *b = dst;
    while (bytes > 0) {
        ssize_t r = pread(fd, b, (size_t)bytes, (off_t)at);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ms_fail(MS_ERR_IO, "%s %s: %s", what, path, strerror(errno));
        if (r == 0)
            return ms_fail(MS_ERR_FORMAT, "%s %s: the file ends early; it is truncated at byte %lld", what, path,
                           (long long)at);
        b += r, bytes -= r, at += r;
    }
    return MS_OK;
}

ms_status ms_fsync_dir(const char *path) {
    if (!path) return ms_fail(MS_ERR_INVALID, "ms_fsync_dir: path is required");
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return ms_fail(MS_ERR_IO, "%s: %s", path, strerror(errno));
    int bad = fsync(fd) != 0 && errno != EINVAL; /* some file systems cannot sync directories */
    int err = errno;
    close(fd);
    if (bad) return ms_fail(MS_ERR_IO, "%s: fsync: %s", path, strerror(err));
    return MS_OK;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb, (void)type, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

ms_status ms_remove_tree(const char *path) {
    if (!path || !*path) return ms_fail(MS_ERR_INVALID, "ms_remove_tree: path is required");
    struct stat sb;
    if (lstat(path, &sb) != 0 && errno == ENOENT) return MS_OK;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return ms_fail(MS_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return MS_OK;
}

ms_status ms_write_file(const char *path, const void *data, int64_t bytes) {
    if (!path || (!data && bytes > 0)) return ms_fail(MS_ERR_INVALID, "ms_write_file: path and data are required");
    ms_span span = {data, bytes};
    return ms_write_atomic("file", path, &span, 1);
}
