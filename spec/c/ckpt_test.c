/* spec/c/ckpt_test.c — CRC-32C, and a checkpoint state round trip through the C API. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/crc32c.h"
#include "engine.h"
#include "fixtures.h"

TEST(ckpt_crc32c_known_values) {
    /* the check value of CRC-32C, and the same over pieces of every length */
    const char *s = "123456789";
    CHECK_MSG(ms_crc32c(0, s, 9) == 0xE3069283u, "crc32c(\"123456789\") = %08x", ms_crc32c(0, s, 9));
    for (size_t cut = 0; cut <= 9; cut++)
        CHECK(ms_crc32c(ms_crc32c(0, s, cut), s + cut, 9 - cut) == 0xE3069283u);
    CHECK(ms_crc32c(0, "", 0) == 0);
    uint8_t zeros[32] = {0};
    CHECK_MSG(ms_crc32c(0, zeros, 32) == 0x8A9136AAu, "crc32c(32 zero bytes) = %08x", ms_crc32c(0, zeros, 32));
    return 0;
}

/* Save the state of a trained engine, load it into a fresh one: every master
 * weight, moment and the step come back; a file with one byte changed is
 * refused by name and leaves the engine as it was. */
TEST(ckpt_state_round_trip_and_damage) {
    char dir[] = "/tmp/ms-ckpt-XXXXXX";
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    ms_config c = fixture_tiny(dir);
    ms_engine *a, *b;
    CHECK_OK(ms_engine_create(&c, &a));
    for (int i = 0; i < 3; i++) CHECK_OK(ms_engine_step(a, NULL));
    ms_state_file rec;
    int32_t done = 0;
    CHECK_OK(ms_engine_state_save(a, dir, 0));
    CHECK_FAILS(ms_engine_state_save(a, dir, 0), MS_ERR_STATE, "the previous save is still being written");
    CHECK_OK(ms_engine_state_wait(a, 1, &done, &rec));
    CHECK(done == 1 && rec.status == MS_OK && strcmp(rec.name, "rank-00000-of-00001.state") == 0);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, rec.name);
    uint32_t crc;
    uint64_t bytes;
    CHECK_OK(ms_crc32c_file(path, &crc, &bytes));
    CHECK(crc == rec.crc32c && bytes == rec.bytes);

    CHECK_OK(ms_engine_create(&c, &b));
    CHECK_OK(ms_engine_state_load(b, dir, &rec, 1));
    CHECK(ms_engine_get_step(b) == 3);
    for (int u = 0; u < a->model.n_units; u++) {
        ms_unit *ua = &a->model.units[u], *ub = &b->model.units[u];
        size_t n = (size_t)(ua->hi - ua->lo) * 4;
        CHECK_MSG(!memcmp(ua->master, ub->master, n) && !memcmp(ua->m, ub->m, n) && !memcmp(ua->v, ub->v, n),
                  "unit %s differs after the round trip", ua->name);
    }
    /* one byte changed: refused with the file and both checksums named */
    FILE *f = fopen(path, "r+b");
    CHECK(f && fseek(f, (long)rec.bytes - 3, SEEK_SET) == 0 && fputc(0x5A, f) != EOF && fclose(f) == 0);
    ms_engine *fresh;
    CHECK_OK(ms_engine_create(&c, &fresh));
    CHECK_FAILS(ms_engine_state_load(fresh, dir, &rec, 1), MS_ERR_FORMAT, "but meta.json records");
    CHECK(strstr(ms_last_error(), rec.name) && strstr(ms_last_error(), "the file was modified or damaged"));
    CHECK(ms_engine_get_step(fresh) == 0);
    /* a record that names another world's file */
    ms_state_file wrong = rec;
    snprintf(wrong.name, sizeof wrong.name, "rank-00000-of-00002.state");
    CHECK_FAILS(ms_engine_state_load(fresh, dir, &wrong, 1), MS_ERR_FORMAT, "expected \"rank-00000-of-00001.state\"");
    int32_t max = 0;
    CHECK_OK(ms_engine_agree_max(fresh, 15, &max));
    CHECK(max == 15);
    ms_engine_free(a);
    ms_engine_free(b);
    ms_engine_free(fresh);
    fixture_remove(dir);
    return 0;
}

/* An asynchronous save writes from the snapshot the plan reserves (the
 * checkpoint line of the host column: master weights and moments of every
 * element held) the same bytes a synchronous save writes; an engine whose
 * config did not ask for it refuses an asynchronous save. */
TEST(ckpt_async_from_the_planned_snapshot) {
    char dir[] = "/tmp/ms-ckpt-XXXXXX";
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    char sync_dir[300], async_dir[300];
    snprintf(sync_dir, sizeof sync_dir, "%s/sync", dir);
    snprintf(async_dir, sizeof async_dir, "%s/async", dir);
    CHECK(mkdir(sync_dir, 0755) == 0 && mkdir(async_dir, 0755) == 0);
    ms_config c = fixture_tiny(dir);
    ms_engine *a, *b;
    CHECK_OK(ms_engine_create(&c, &a));
    CHECK(a->plan.host_bytes.checkpoint == 0);
    for (int i = 0; i < 2; i++) CHECK_OK(ms_engine_step(a, NULL));
    CHECK_FAILS(ms_engine_state_save(a, async_dir, 1), MS_ERR_STATE, "created without checkpoint_async");
    ms_state_file ra, rb;
    int32_t done = 0;
    CHECK_OK(ms_engine_state_save(a, sync_dir, 0));
    CHECK_OK(ms_engine_state_wait(a, 1, &done, &ra));

    c.checkpoint_async = 1;
    CHECK_OK(ms_engine_create(&c, &b));
    int64_t params = b->plan.n_params;
    CHECK_MSG(b->plan.host_bytes.checkpoint >= 3 * 4 * params && b->plan.host_bytes.checkpoint < 3 * 4 * params + 64,
              "checkpoint line %lld bytes for %lld parameters", (long long)b->plan.host_bytes.checkpoint,
              (long long)params);
    for (int i = 0; i < 2; i++) CHECK_OK(ms_engine_step(b, NULL));
    CHECK_OK(ms_engine_state_save(b, async_dir, 1));
    CHECK_OK(ms_engine_state_wait(b, 1, &done, &rb));
    CHECK(done == 1 && rb.status == MS_OK);
    CHECK_MSG(rb.bytes == ra.bytes && rb.crc32c == ra.crc32c, "async %llu bytes crc %08x, sync %llu bytes crc %08x",
              (unsigned long long)rb.bytes, rb.crc32c, (unsigned long long)ra.bytes, ra.crc32c);
    ms_engine_free(a);
    ms_engine_free(b);
    fixture_remove(sync_dir);
    fixture_remove(async_dir);
    fixture_remove(dir);
    return 0;
}
