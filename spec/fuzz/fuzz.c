/* spec/fuzz/fuzz.c — the part of every fuzz target that is not its parser (see fuzz.h). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char tmp[256];

static void remove_tmp(void) {
    if (!tmp[0]) return;
    DIR *d = opendir(tmp);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(tmp);
}

const char *fuzz_dir(void) {
    if (!tmp[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/ms-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmp)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(remove_tmp);
    }
    return tmp;
}

static int write_file(const char *path, const void *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        p += w, n -= (size_t)w;
    }
    return close(fd);
}

const char *fuzz_file(const char *name, const void *data, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    if (write_file(path, data, n) != 0) {
        perror("fuzz: writing the input file");
        abort();
    }
    return path;
}

int fuzz_seed(const char *dir, const char *name, const void *data, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (write_file(path, data, n) != 0) {
        fprintf(stderr, "fuzz: cannot write the seed %s\n", path);
        return -1;
    }
    return 0;
}

uint8_t *fuzz_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap) {
            uint8_t *b = realloc(buf, cap *= 2);
            if (!b) free(buf);
            buf = b;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

uint8_t *fuzz_patch(const uint8_t *base, size_t n_base, const uint8_t *data, size_t n, size_t *n_out) {
    size_t tag = sizeof FUZZ_PATCH_TAG - 1;
    if (n < tag || memcmp(data, FUZZ_PATCH_TAG, tag) != 0 || n_base == 0) return NULL;
    uint8_t *out = malloc(n_base);
    if (!out) abort();
    memcpy(out, base, n_base);
    size_t len = n_base;
    for (size_t i = tag; i + 5 <= n && len > 0;) {
        uint32_t off;
        memcpy(&off, data + i, 4);
        size_t k = data[i + 4];
        i += 5;
        off %= (uint32_t)len;
        if (k == 0) {
            len = off;
            continue;
        }
        if (k > n - i) k = n - i;
        if (k > len - off) k = len - off;
        memcpy(out + off, data + i, k);
        i += k;
    }
    *n_out = len;
    return out;
}

void fuzz_patch_record(uint8_t *buf, size_t *len, uint32_t offset, const void *bytes, uint8_t n) {
    memcpy(buf + *len, &offset, 4);
    buf[*len + 4] = n;
    memcpy(buf + *len + 5, bytes, n);
    *len += 5 + (size_t)n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *seeds = getenv("MS_FUZZ_SEEDS");
    if (seeds && *seeds) exit(fuzz_seeds(seeds) == 0 ? 0 : 1);
    if (fuzz_setup() != 0) {
        fprintf(stderr, "fuzz: setup failed\n");
        exit(1);
    }
    return 0;
}
