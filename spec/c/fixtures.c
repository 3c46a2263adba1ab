/* spec/c/fixtures.c — see fixtures.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"

static const char *verses[] = {
    "In the beginning God created the heaven and the earth.\n",
    "And the earth was without form, and void.\n",
    "And God said, Let there be light: and there was light.\n",
    "And God saw the light, that it was good.\n",
};

int fixture_shards(char *dir, size_t len) {
    snprintf(dir, len, "/tmp/ms-spec-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    char text[256];
    snprintf(text, sizeof text, "%s/text.txt", dir);
    FILE *f = fopen(text, "w");
    if (!f) return 1;
    for (int i = 0; i < 512; i++) fputs(verses[i % 4], f);
    fclose(f);
    char train[256], val[256];
    snprintf(train, sizeof train, "%s/train.bin", dir);
    snprintf(val, sizeof val, "%s/val.bin", dir);
    if (ms_bytes_prepare(text, train, val, 4, NULL, NULL) != MS_OK) {
        fprintf(stderr, "fixture: %s\n", ms_last_error());
        return 1;
    }
    return 0;
}

void fixture_paths(ms_config *c, const char *dir) {
    static char train[256], val[256];
    snprintf(train, sizeof train, "%s/train.bin", dir);
    snprintf(val, sizeof val, "%s/val.bin", dir);
    c->train_path = train;
    c->val_path = val;
    c->tokenizer = "bytes";
}

ms_config fixture_tiny(const char *dir) {
    ms_config c;
    ms_config_defaults(&c);
    fixture_paths(&c, dir);
    c.model.dim = 32;
    c.model.n_layers = 2;
    c.model.ffn_dim = 64;
    c.train.seq_len = 32;
    c.train.batch = 8;
    c.train.micro_batch = 4;
    return c;
}

void fixture_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    char path[512];
    while ((ent = readdir(d)))
        if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

const char *fixture_file(const char *dir, const char *name, const void *data, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
    return path;
}
