/*
 * spec/c/errors_test.c — bad input gets an ms_status and a sentence that says
 * what, where and what would be right; never a crash, nothing half-written.
 */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "fixtures.h"
#include "include/moonspeed.h"

static ms_config tiny(void) {
    ms_config c;
    ms_config_defaults(&c);
    c.model.dim = 16;
    c.model.n_layers = 1;
    c.model.n_heads = 2;
    c.model.n_kv_heads = 1;
    c.model.ffn_dim = 32;
    c.train.seq_len = 16;
    c.train.batch = 2;
    c.train.micro_batch = 2;
    c.threads = 1;
    return c;
}

static ms_status create(ms_config *c) {
    ms_engine *e = NULL;
    ms_status st = ms_engine_create(c, &e);
    ms_engine_free(e);
    return st;
}

TEST(errors_impossible_model_shapes) {
    ms_config c = tiny();
    c.model.dim = 100;
    c.model.n_heads = 3;
    CHECK_FAILS(create(&c), MS_ERR_INVALID,
                "model.dim = 100 is not divisible by model.n_heads = 3; every head needs dim/n_heads channels: "
                "choose n_heads among the divisors of 100 (nearest: 2, 4, 1)");
    c = tiny();
    c.model.n_heads = 8;
    c.model.dim = 64;
    c.model.n_kv_heads = 3;
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "model.n_heads = 8 is not a multiple of model.n_kv_heads = 3");
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "(nearest: 2, 4, 1)");
    c = tiny();
    c.model.dim = 12;
    c.model.n_heads = 4; /* head_dim 3 */
    c.model.n_kv_heads = 2;
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "head_dim = dim/n_heads = 12/4 = 3 is odd");
    c = tiny();
    c.train.seq_len = 512;
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "train.seq_len = 512 is outside 1..model.max_seq_len = 256");
    c = tiny();
    c.train.batch = 6;
    c.train.micro_batch = 4;
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "train.batch = 6 is not a multiple of train.micro_batch = 4");
    c = tiny();
    c.model.n_layers = 0;
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "n_layers = 0");
    c = tiny();
    c.train.beta2 = 1.0f;
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "train.beta2 = 1 must be in [0, 1)");
    c = tiny();
    c.device = MS_DEVICE_CUDA;
    /* without nvcc: no CUDA backend; with it: no device here, or the engine does not drive it yet */
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "device \"cuda\"");
    ms_plan plan = {0};
    ms_status st = ms_plan_compute(&c, &plan);
    CHECK(st == MS_OK || strstr(ms_last_error(), "device \"cuda\"") != NULL);
    c = tiny();
    c.world_size = 2; /* a plan may be for several ranks; an engine needs them started */
    c.train.batch = 4;
    CHECK_OK(ms_plan_compute(&c, &plan));
    CHECK_FAILS(create(&c), MS_ERR_INVALID, "world_size = 2, but no ranks were started");
    return 0;
}

/* A valid shard header for n tokens of a vocabulary. */
static void header(uint8_t h[64], uint32_t version, uint32_t vocab, uint64_t n, const char *tok) {
    memset(h, 0, 64);
    uint32_t hb = 64;
    memcpy(h, "MSTOKENS", 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &hb, 4);
    memcpy(h + 16, &vocab, 4);
    memcpy(h + 24, &n, 8);
    memcpy(h + 32, tok, strlen(tok));
}

static ms_status with_train(const char *path) {
    ms_config c = tiny();
    c.train_path = path;
    c.tokenizer = "bytes";
    return create(&c);
}

TEST(errors_bad_shards) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    uint8_t buf[64 + 4 * 100];
    uint32_t *tokens = (uint32_t *)(buf + 64);
    for (int i = 0; i < 100; i++) tokens[i] = (uint32_t)(i % 200);

    CHECK_FAILS(with_train("/nonexistent/train.bin"), MS_ERR_IO,
                "token shard /nonexistent/train.bin: No such file or directory; run `make data`");

    const char *p = fixture_file(dir, "short.bin", "MSTOK", 5);
    CHECK_FAILS(with_train(p), MS_ERR_FORMAT, "5 bytes is shorter than the 64-byte header");

    p = fixture_file(dir, "text.bin", "In the beginning God created the heaven and the earth, and more text.", 70);
    CHECK_FAILS(with_train(p), MS_ERR_FORMAT,
                "magic \"In the b\", expected \"MSTOKENS\"; this is not a moonspeed token shard");

    header(buf, 2, 258, 100, "bytes");
    p = fixture_file(dir, "v2.bin", buf, sizeof buf);
    CHECK_FAILS(with_train(p), MS_ERR_FORMAT, "version 2, this build reads version 1");

    header(buf, 1, 258, 100, "bytes");
    p = fixture_file(dir, "cut.bin", buf, sizeof buf - 10);
    CHECK_FAILS(with_train(p), MS_ERR_FORMAT,
                "header says 100 tokens (464 bytes) but the file has 454 bytes; the file is truncated");

    header(buf, 1, 128256, 100, "bytes");
    p = fixture_file(dir, "vocab.bin", buf, sizeof buf);
    CHECK_FAILS(with_train(p), MS_ERR_FORMAT,
                "vocabulary size 128256, but model.vocab_size is 258; the shard was made with another tokenizer");

    header(buf, 1, 258, 100, "llama3");
    p = fixture_file(dir, "tok.bin", buf, sizeof buf);
    CHECK_FAILS(with_train(p), MS_ERR_FORMAT, "made by tokenizer \"llama3\", but data.tokenizer is \"bytes\"");

    header(buf, 1, 258, 100, "bytes");
    tokens[42] = 300;
    p = fixture_file(dir, "range.bin", buf, sizeof buf);
    CHECK_FAILS(with_train(p), MS_ERR_FORMAT, "token 42 is 300, outside the vocabulary of 258");
    tokens[42] = 42;

    header(buf, 1, 258, 10, "bytes");
    p = fixture_file(dir, "few.bin", buf, 64 + 40);
    CHECK_FAILS(with_train(p), MS_ERR_INVALID, "few.bin: 10 tokens, and no shard holds train.seq_len + 1 = 17");

    /* a pattern reads every matching shard; one that matches nothing says so */
    char pattern[128];
    snprintf(pattern, sizeof pattern, "%s/nothing-*.bin", dir);
    CHECK_FAILS(with_train(pattern), MS_ERR_IO, "the pattern matches no file; run `moonspeed tokenize`");
    snprintf(pattern, sizeof pattern, "%s/v*.bin", dir); /* v2.bin and val.bin: v2's version stops it */
    CHECK_FAILS(with_train(pattern), MS_ERR_FORMAT, "v2.bin: version 2");

    /* the shard info reader says the same */
    ms_shard_info info;
    CHECK_FAILS(ms_shard_info_read(fixture_file(dir, "x.bin", "nope", 4), &info), MS_ERR_FORMAT,
                "shorter than the 64-byte header");
    fixture_remove(dir);
    return 0;
}

TEST(errors_failed_writes_leave_nothing) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    uint32_t tokens[4] = {1, 2, 3, 4};
    char path[128];
    /* a directory that does not exist: an error, and no file appears */
    snprintf(path, sizeof path, "%s/missing/out.bin", dir);
    CHECK_FAILS(ms_shard_write(path, tokens, 4, 258, "bytes"), MS_ERR_IO, "cannot create");
    CHECK(access(path, F_OK) != 0);
    /* an out-of-range token is refused before anything is written; the old file stays */
    snprintf(path, sizeof path, "%s/train.bin", dir);
    struct stat before, after;
    CHECK(stat(path, &before) == 0);
    tokens[2] = 999;
    CHECK_FAILS(ms_shard_write(path, tokens, 4, 258, "bytes"), MS_ERR_INVALID, "token 2 is 999");
    CHECK(stat(path, &after) == 0 && after.st_size == before.st_size);
    /* preparing from a missing text says which */
    CHECK_FAILS(ms_bytes_prepare("/nonexistent.txt", path, path, 20, NULL, NULL), MS_ERR_IO,
                "text /nonexistent.txt: No such file or directory");
    CHECK_FAILS(ms_bytes_prepare(path, path, path, 1, NULL, NULL), MS_ERR_INVALID, "val_every = 1");
    fixture_remove(dir);
    return 0;
}

TEST(errors_api_misuse) {
    CHECK_FAILS(ms_engine_create(NULL, NULL), MS_ERR_INVALID, "cfg and out are required");
    ms_config c = tiny();
    ms_engine *e;
    CHECK_OK(ms_engine_create(&c, &e)); /* no data: creating works, stepping says why not */
    CHECK_FAILS(ms_engine_step(e, NULL), MS_ERR_STATE, "no training data; set data.train");
    float loss;
    CHECK_FAILS(ms_engine_eval(e, &loss), MS_ERR_STATE, "no validation data; set data.val");
    CHECK_FAILS(ms_engine_unit(e, 99, &(ms_unit_info){0}), MS_ERR_INVALID, "unit 99 does not exist; units are 0..2");
    CHECK_FAILS(ms_engine_tensor(e, 1, 42, &(ms_tensor_info){0}), MS_ERR_INVALID,
                "unit block.0 has no tensor 42; its tensors are 0..8");
    float x[4];
    CHECK_FAILS(ms_engine_tensor_read(e, 1, 0, MS_VIEW_PARAM, 14, x, 4), MS_ERR_INVALID,
                "tensor block.0.attn_norm: elements [14, 18) are outside 0..16");
    CHECK_FAILS(ms_engine_load_weights(e, "/nonexistent.bin"), MS_ERR_IO, "weights /nonexistent.bin");
    ms_engine_free(e);
    ms_engine_free(NULL);
    return 0;
}
