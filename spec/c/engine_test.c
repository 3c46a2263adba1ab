/*
 * spec/c/engine_test.c — the engine as a whole: gradients of the full model
 * against finite differences, activation checkpointing, the memory plan
 * against the arenas, zero allocations in steady state, meta init, training,
 * bf16 against fp32, weights and generation.
 */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "alloc_count.h"
#include "check.h"
#include "core/rng.h"
#include "cuda/kernels.h"
#include "device/cuda.h"
#include "engine.h"
#include "optim/optim.h"
#include "fixtures.h"

/* A micro model that a finite-difference check can afford. */
static ms_config micro_config(int tie, int checkpoint) {
    ms_config c;
    ms_config_defaults(&c);
    c.model = (ms_model_config){.vocab_size = 11, .dim = 8, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                                .ffn_dim = 12, .max_seq_len = 8, .tie_embeddings = tie, .rope_theta = 100.0f,
                                .norm_eps = 1e-5f, .init_std = 0.4f};
    c.train.seq_len = 5;
    c.train.micro_batch = 2;
    c.train.batch = 2;
    c.train.checkpoint_activations = checkpoint;
    c.threads = 1;
    return c;
}

static void random_batch(ms_engine *e, unsigned seed) {
    ms_model *m = &e->model;
    float r[64];
    int n = m->B * m->T;
    fill_random(r, 2 * n, seed, 1.0f);
    for (int i = 0; i < n; i++) {
        m->tokens[i] = (int32_t)((r[i] + 1.0f) * 0.5f * (float)(m->c.vocab_size - 1) + 0.5f);
        m->targets[i] = (int32_t)((r[n + i] + 1.0f) * 0.5f * (float)(m->c.vocab_size - 1) + 0.5f);
    }
    m->targets[3] = -1; /* an ignored position */
}

static void zero_grads(ms_engine *e) {
    for (int u = 0; u < e->model.n_units; u++)
        memset(e->model.units[u].grads, 0, (size_t)e->model.units[u].padded * 4);
}

/* One rank, stage 0: every unit is resident and owns its whole range. */
static double loss_only(ms_engine *e) {
    for (int u = 0; u < e->model.n_units; u++) ms_model_unit_forward(&e->model, &e->dev, u, e->model.B, e->model.T);
    return ms_model_loss(&e->model, &e->dev, e->model.B, e->model.T);
}

static float *master_of(ms_engine *e, int t) {
    const ms_tensor *tt = &e->model.tensors[t];
    return e->model.units[tt->unit].master + tt->offset;
}

static double forward_backward(ms_engine *e) {
    double loss = 0;
    if (ms_engine_forward_backward(e, e->model.B, e->model.T, 1.0f, 1, &loss) != MS_OK) return NAN;
    return loss;
}

static int gradient_check(int tie) {
    ms_config c = micro_config(tie, 0);
    ms_engine *e;
    CHECK_OK(ms_engine_create(&c, &e));
    random_batch(e, 7);
    zero_grads(e);
    CHECK(isfinite(forward_backward(e)));
    int checked = 0, bad = 0;
    for (int t = 0; t < e->model.n_tensors; t++) {
        ms_tensor *tt = &e->model.tensors[t];
        float *w = master_of(e, t), *g = ms_tensor_grad(&e->model, t);
        for (int k = 0; k < 6; k++) {
            int64_t i = (int64_t)(k * 7919) % tt->numel;
            float keep = w[i];
            const double h = 1e-2;
            w[i] = keep + (float)h;
            double up = loss_only(e);
            w[i] = keep - (float)h;
            double down = loss_only(e);
            w[i] = keep;
            double fd = (up - down) / (2 * h);
            if (!(fabs(fd - g[i]) <= 2e-3 + 2e-2 * fabs(fd))) {
                if (bad++ < 5) fprintf(stderr, "%s[%lld]: analytic %.6g, finite difference %.6g\n", tt->name,
                                       (long long)i, (double)g[i], fd);
            }
            checked++;
        }
    }
    ms_engine_free(e);
    CHECK_MSG(bad == 0, "%d of %d gradient elements disagree with finite differences", bad, checked);
    return 0;
}

TEST(engine_gradient_matches_finite_differences) { return gradient_check(0); }
TEST(engine_gradient_matches_finite_differences_tied) { return gradient_check(1); }

TEST(engine_checkpointing_gives_identical_gradients) {
    ms_engine *e[3]; /* none, whole blocks, selective */
    for (int k = 0; k < 3; k++) {
        ms_config c = micro_config(0, k);
        c.model.n_layers = 3;
        CHECK_OK(ms_engine_create(&c, &e[k]));
        random_batch(e[k], 11);
        zero_grads(e[k]);
        CHECK(isfinite(forward_backward(e[k])));
    }
    for (int k = 1; k < 3; k++)
        for (int u = 0; u < e[0]->model.n_units; u++)
            CHECK_MSG(memcmp(e[0]->model.units[u].grads, e[k]->model.units[u].grads,
                             (size_t)e[0]->model.units[u].numel * 4) == 0,
                      "unit %s: gradients differ with %s checkpointing", e[0]->model.units[u].name,
                      k == 1 ? "activation" : "selective");
    ms_memory_report r0, r1, r2;
    ms_engine_memory(e[0], &r0);
    ms_engine_memory(e[1], &r1);
    ms_engine_memory(e[2], &r2);
    CHECK_MSG(r1.reserved.activations < r2.reserved.activations, "checkpointing keeps more than selective");
    CHECK_MSG(r2.reserved.activations < r0.reserved.activations, "selective checkpointing saves no activation memory");
    for (int k = 0; k < 3; k++) ms_engine_free(e[k]);
    return 0;
}

TEST(engine_plan_equals_reservations) {
    for (int precision = 0; precision < 2; precision++) {
        for (int ck = 0; ck < 2; ck++) {
            ms_config c = micro_config(ck, ck);
            c.precision = precision;
            ms_plan p;
            CHECK_OK(ms_plan_compute(&c, &p));
            ms_engine *e;
            CHECK_OK(ms_engine_create(&c, &e));
            ms_memory_report r;
            CHECK_OK(ms_engine_memory(e, &r));
            const int64_t *plan = &p.device_bytes.params, *res = &r.reserved.params, *used = &r.used.params;
            for (int k = 0; k < (int)(sizeof(ms_memory) / sizeof(int64_t)); k++) {
                CHECK_MSG(plan[k] == res[k], "field %d: plan %lld, reserved %lld", k, (long long)plan[k],
                          (long long)res[k]);
                CHECK_MSG(res[k] == used[k], "field %d: reserved %lld, used %lld", k, (long long)res[k],
                          (long long)used[k]);
            }
            CHECK(r.reservations == MS_MEM_COUNT);
            /* parameters by hand: padded unit sizes times 4 bytes (bf16 is emulated in fp32 on the CPU) */
            int64_t params = 0;
            for (int u = 0; u < e->model.n_units; u++) params += e->model.units[u].padded * 4;
            CHECK(p.device_bytes.params == params);
            CHECK(p.device_bytes.grads == params);
            CHECK(p.device_bytes.optimizer == 2 * params);
            CHECK(p.device_bytes.master == (precision ? params : 0));
            ms_engine_free(e);
        }
    }
    return 0;
}

/* A plan for the GPU counts the backend's own scratch (cuBLASLt workspace,
 * sums, the kernels' temporaries for the micro-batch) in its device total;
 * one for the CPU has none. Needs no GPU. */
TEST(engine_plan_counts_the_backend_scratch) {
    for (int big = 0; big < 2; big++) {
        ms_config c = micro_config(0, 0);
        if (big) { /* Llama 3 8B's width and vocabulary, 8 sequences of 8192 */
            c.model = (ms_model_config){.vocab_size = 128256, .dim = 4096, .n_layers = 1, .n_heads = 32,
                                        .n_kv_heads = 8, .ffn_dim = 14336, .max_seq_len = 8192,
                                        .rope_theta = 500000.0f, .norm_eps = 1e-5f, .init_std = 0.02f};
            c.train.seq_len = 8192, c.train.micro_batch = 8, c.train.batch = 8;
            c.precision = MS_PRECISION_BF16;
        }
        ms_plan cpu, gpu;
        CHECK_OK(ms_plan_compute(&c, &cpu));
        c.device = MS_DEVICE_CUDA;
        CHECK_OK(ms_plan_compute(&c, &gpu));
        CHECK(cpu.device_bytes.backend == 0);
        ms_device_shape s = {.rows = (int64_t)c.train.micro_batch * c.train.seq_len, .B = c.train.micro_batch,
                             .T = c.train.seq_len, .heads = c.model.n_heads,
                             .head_dim = c.model.dim / c.model.n_heads, .dim = c.model.dim};
        int64_t want = ms_cuda_scratch_bytes(NULL, &s);
        CHECK_MSG(gpu.device_bytes.backend == want, "backend %lld, expected %lld",
                  (long long)gpu.device_bytes.backend, (long long)want);
        CHECK(want >= MS_CUDA_WORKSPACE_BYTES + ms_cuda_sums_bytes() + (int64_t)s.B * s.heads * s.T * 4);
        const int64_t *f = &gpu.device_bytes.params;
        int64_t sum = 0, n = (int64_t)(sizeof(ms_memory) / sizeof(int64_t)) - 1;
        for (int64_t k = 0; k < n; k++) sum += f[k];
        CHECK(f[n] == gpu.device_bytes.total && gpu.device_bytes.total == sum);
        if (big) /* 65536 tokens of 32 heads of 128: attention's fp32 sums of dq (1 GiB) are the largest of the ops */
            CHECK(ms_cuda_op_scratch_bytes(&s) == cuda_attention_bwd_scratch(s.B, s.T, s.heads, s.head_dim) &&
                  cuda_attention_bwd_scratch(s.B, s.T, s.heads, s.head_dim) > cuda_embedding_bwd_scratch(s.rows, s.dim));
        else /* fp32 elements take 4 bytes on both: the backend line is the whole difference */
            CHECK(gpu.device_bytes.total - cpu.device_bytes.total == want);
    }
    return 0;
}

TEST(engine_plan_of_llama_3_8b) {
    ms_config c;
    ms_config_defaults(&c);
    c.model = (ms_model_config){.vocab_size = 128256, .dim = 4096, .n_layers = 32, .n_heads = 32,
                                .n_kv_heads = 8, .ffn_dim = 14336, .max_seq_len = 8192, .tie_embeddings = 0,
                                .rope_theta = 500000.0f, .norm_eps = 1e-5f, .init_std = 0.02f};
    c.train.seq_len = 8192;
    c.train.micro_batch = 1;
    c.train.batch = 1;
    c.precision = MS_PRECISION_BF16;
    ms_plan p;
    CHECK_OK(ms_plan_compute(&c, &p));
    CHECK(p.n_params == 8030261248LL); /* the published Llama-3-8B count */
    CHECK(p.n_units == 34);
    CHECK_NEAR(p.flops_per_token / 1e9, 51.47, 0.01, 0);      /* 6N + 6LTd */
    CHECK_NEAR(p.flops_per_token_full / 1e9, 57.91, 0.01, 0); /* 6N + 12LTd */
    CHECK(p.device_bytes.master >= 4 * p.n_params);
    CHECK(p.device_bytes.optimizer >= 8 * p.n_params);
    return 0;
}

TEST(engine_steady_state_allocates_nothing) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    /* The default model's shape with short sequences. (Much smaller matmuls
       would take OpenBLAS's small-matrix path, which allocates a packing
       buffer on every call.) */
    ms_config c;
    ms_config_defaults(&c);
    fixture_paths(&c, dir);
    c.train.seq_len = 64;
    c.train.batch = 8;
    c.train.micro_batch = 4;
    c.train.checkpoint_activations = 1;
    c.train.eval_batches = 2;
    c.threads = 2;
    ms_engine *e;
    CHECK_OK(ms_engine_create(&c, &e));
    ms_step_stats st;
    float vl;
    int32_t prompt[2] = {1, 2}, out[8], n_out;
    for (int i = 0; i < 2; i++) CHECK_OK(ms_engine_step(e, &st)); /* warm-up: thread pools start */
    CHECK_OK(ms_engine_eval(e, &vl));
    CHECK_OK(ms_engine_generate(e, prompt, 2, 8, 0.8f, 3, 1, -1, out, &n_out));
    alloc_count_start();
    for (int i = 0; i < 5; i++) ms_engine_step(e, &st);
    ms_engine_eval(e, &vl);
    ms_engine_generate(e, prompt, 2, 8, 0.8f, 3, 1, -1, out, &n_out);
    long n = alloc_count_stop();
    CHECK_MSG(n == 0, "%ld heap allocations during 5 steps, an eval and a generation", n);
    ms_engine_free(e);
    fixture_remove(dir);
    return 0;
}

TEST(engine_meta_init_is_independent_of_layout) {
    ms_config a = micro_config(0, 0), b = micro_config(0, 1);
    b.train.micro_batch = 1; /* different activation layout, same parameters */
    b.train.batch = 2;
    ms_engine *ea, *eb;
    CHECK_OK(ms_engine_create(&a, &ea));
    CHECK_OK(ms_engine_create(&b, &eb));
    for (int u = 0; u < ea->model.n_units; u++)
        CHECK(memcmp(ea->model.units[u].master, eb->model.units[u].master, (size_t)ea->model.units[u].numel * 4) == 0);
    /* any element alone equals the whole-model init: the basis for per-rank shards */
    for (int t = 0; t < ea->model.n_tensors; t++) {
        const ms_tensor *tt = &ea->model.tensors[t];
        for (int64_t i = tt->numel - 1; i >= 0; i -= 5)
            CHECK(ms_tensor_init_value(tt, a.train.seed, i) == master_of(ea, t)[i]);
    }
    /* the values are what the recipe asked for: norms 1, matrices N(0, init_std) */
    double sum = 0, sq = 0;
    const ms_tensor *wq = &ea->model.tensors[2];
    CHECK(strcmp(wq->name, "block.0.attn.wq") == 0);
    ms_tensor big = *wq;
    big.numel = 100000;
    for (int64_t i = 0; i < big.numel; i++) {
        double v = ms_tensor_init_value(&big, 99, i);
        sum += v;
        sq += v * v;
    }
    CHECK_NEAR(sum / big.numel, 0.0, 0.01, 0);
    CHECK_NEAR(sqrt(sq / big.numel), a.model.init_std, 0, 0.01);
    CHECK(master_of(ea, 1)[0] == 1.0f); /* block.0.attn_norm */
    ms_engine_free(ea);
    ms_engine_free(eb);
    return 0;
}

TEST(engine_philox_known_answers) {
    /* Random123's published known-answer vectors for Philox4x32-10 */
    uint32_t r[4];
    ms_philox(0, 0, 0, r);
    CHECK(r[0] == 0x6627e8d5u && r[1] == 0xe169c58du && r[2] == 0xbc57ac4cu && r[3] == 0x9b00dbd8u);
    ms_philox(~0ull, ~0ull, ~0ull, r);
    CHECK(r[0] == 0x408f276du && r[1] == 0x41c83b0eu && r[2] == 0xa20bc7c6u && r[3] == 0x6d5451fdu);
    ms_philox(0x299f31d0a4093822ull, 0x85a308d3243f6a88ull, 0x0370734413198a2eull, r);
    CHECK(r[0] == 0xd16cfe09u && r[1] == 0x94fdccebu && r[2] == 0x5001e420u && r[3] == 0x24126ea1u);
    return 0;
}

TEST(engine_schedules) {
    ms_train_config t = {.steps = 12, .warmup = 1, .lr = 1.0f, .min_lr = 0.1f, .schedule = MS_SCHEDULE_COSINE};
    CHECK_NEAR(ms_schedule_lr(&t, 0), 1.0, 1e-6, 0);  /* warmup of 1: full lr at step 0 */
    CHECK_NEAR(ms_schedule_lr(&t, 1), 1.0, 1e-6, 0);  /* decay starts at 1 */
    CHECK_NEAR(ms_schedule_lr(&t, 6), 0.55, 1e-6, 0); /* half way */
    CHECK_NEAR(ms_schedule_lr(&t, 11), 0.1, 1e-6, 0); /* min_lr at the last step */
    t.schedule = MS_SCHEDULE_LINEAR;
    CHECK_NEAR(ms_schedule_lr(&t, 3), 1.0 - 0.9 * 0.2, 1e-6, 0); /* 2 of 10 decay steps */
    t.schedule = MS_SCHEDULE_CONSTANT;
    t.warmup = 4;
    CHECK_NEAR(ms_schedule_lr(&t, 1), 0.5, 1e-6, 0);
    CHECK_NEAR(ms_schedule_lr(&t, 9), 1.0, 1e-6, 0);
    return 0;
}

TEST(engine_trains_and_generates) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    ms_config c = fixture_tiny(dir);
    c.train.steps = 200;
    c.train.lr = 1e-2f;
    c.train.eval_batches = 4;
    ms_engine *e;
    CHECK_OK(ms_engine_create(&c, &e));
    float before, after;
    CHECK_OK(ms_engine_eval(e, &before));
    CHECK_NEAR(before, log(258.0), 0.1, 0); /* a fresh model is close to uniform */
    ms_step_stats st;
    for (int s = 0; s < c.train.steps; s++) {
        CHECK_OK(ms_engine_step(e, &st));
        CHECK(st.step == s && st.tokens == 8 * 32 && st.seconds > 0 && st.flops > 0);
    }
    CHECK_OK(ms_engine_eval(e, &after));
    /* the fixture text repeats a short verse: the model must learn it well */
    CHECK_MSG(after < 1.0f, "validation loss %.3f after %d steps (started at %.3f)", after, c.train.steps, before);

    int32_t prompt[1] = {256}, out[40], out2[40], n, n2;
    CHECK_OK(ms_engine_generate(e, prompt, 1, 40, 0.0f, 0, 1, -1, out, &n));
    CHECK(n == 40);
    for (int i = 0; i < n; i++) CHECK(out[i] >= 0 && out[i] < 258);
    CHECK_OK(ms_engine_generate(e, prompt, 1, 40, 0.8f, 5, 42, -1, out, &n));
    CHECK_OK(ms_engine_generate(e, prompt, 1, 40, 0.8f, 5, 42, -1, out2, &n2));
    CHECK(n == n2 && memcmp(out, out2, (size_t)n * 4) == 0); /* same seed, same text */
    CHECK_FAILS(ms_engine_generate(e, (int32_t[]){300}, 1, 4, 1.0f, 0, 1, -1, out, &n), MS_ERR_INVALID,
                "outside the vocabulary of 258");

    /* weights round trip: save, scramble, load, same loss */
    char path[96];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    CHECK_OK(ms_engine_save_weights(e, path));
    float keep = 0;
    CHECK_OK(ms_engine_tensor_read(e, 1, 1, MS_VIEW_MASTER, 0, &keep, 1));
    float junk[4] = {9, 9, 9, 9};
    CHECK_OK(ms_engine_tensor_write(e, 1, 1, 0, junk, 4));
    CHECK_OK(ms_engine_load_weights(e, path));
    float again, loss2;
    CHECK_OK(ms_engine_tensor_read(e, 1, 1, MS_VIEW_MASTER, 0, &again, 1));
    CHECK(again == keep);
    CHECK_OK(ms_engine_eval(e, &loss2));
    CHECK(loss2 == after);
    ms_engine_free(e);

    /* a different model refuses the file, naming the unit */
    c.model.ffn_dim = 48;
    CHECK_OK(ms_engine_create(&c, &e));
    CHECK_FAILS(ms_engine_load_weights(e, path), MS_ERR_FORMAT, "unit 1 is block.0 with");
    ms_engine_free(e);
    fixture_remove(dir);
    return 0;
}

TEST(engine_resumes_data_order_from_step) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    ms_dataset s;
    char path[96];
    snprintf(path, sizeof path, "%s/train.bin", dir);
    CHECK_OK(ms_dataset_open(&s, path, 258, "bytes", 32));
    int32_t a[64], at[64], b[64], bt[64];
    ms_batch_train(&s, 5, 17, 2, 2, 32, a, at);
    ms_batch_train(&s, 5, 3, 2, 2, 32, b, bt); /* another step in between changes nothing */
    ms_batch_train(&s, 5, 17, 2, 2, 32, b, bt);
    CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(at, bt, sizeof at) == 0);
    for (int i = 0; i + 1 < 32; i++) CHECK(at[i] == a[i + 1]); /* targets are the next tokens */
    ms_batch_train(&s, 5, 18, 2, 2, 32, b, bt);
    CHECK(memcmp(a, b, sizeof a) != 0);
    /* the global batch is one set whatever the split: sequences 2..3 are sequence 1..2 of a batch from 1 */
    int32_t c[96], ct[96];
    ms_batch_train(&s, 5, 17, 1, 3, 32, c, ct);
    CHECK(memcmp(a, c + 32, sizeof a) == 0);
    ms_dataset_close(&s);
    fixture_remove(dir);
    return 0;
}

/* A pattern names several shards, read as one sequence of windows that never
 * cross from one shard into the next. */
TEST(engine_dataset_spans_shards) {
    char dir[64], path[128];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    uint32_t tokens[200];
    for (int k = 0; k < 3; k++) {
        int n = 50 + 50 * k; /* 50, 100, 150 tokens, all equal to k + 1 */
        for (int i = 0; i < n; i++) tokens[i] = (uint32_t)(k + 1);
        snprintf(path, sizeof path, "%s/part-%05d.bin", dir, k);
        CHECK_OK(ms_shard_write(path, tokens, n, 258, "bytes"));
    }
    snprintf(path, sizeof path, "%s/part-*.bin", dir);
    ms_dataset d;
    CHECK_OK(ms_dataset_open(&d, path, 258, "bytes", 60)); /* part 0 is too short for a window */
    CHECK(d.n == 3 && d.tokens == 300 && d.windows == (100 - 60) + (150 - 60));
    int32_t x[60 * 8], y[60 * 8];
    int seen[4] = {0};
    for (int b = 0; b < 4; b++) {
        ms_batch_eval(&d, b, 4, 2, 60, x, y);
        for (int i = 0; i < 2; i++) {
            int first = x[i * 60];
            for (int t = 0; t < 60; t++) CHECK(x[i * 60 + t] == first && y[i * 60 + t] == first);
            seen[first]++;
        }
    }
    CHECK(seen[1] == 0 && seen[2] > 0 && seen[3] > 0 && seen[2] + seen[3] == 8);
    ms_batch_train(&d, 1, 0, 0, 8, 60, x, y);
    for (int i = 0; i < 8; i++)
        for (int t = 0; t < 60; t++) CHECK(x[i * 60 + t] == x[i * 60] && x[i * 60] >= 2);
    ms_dataset_close(&d);
    fixture_remove(dir);
    return 0;
}

/* The mixed-precision logic on real text: on the tiny default model (the
 * schema's defaults, with the default recipe's learning rate and warmup),
 * bf16 compute with fp32 master weights follows the fp32 loss curve within
 * 2% over 200 steps, window by window. */
TEST(engine_bf16_tracks_fp32_on_kjv) {
    const char *train = "data/kjv/train.bin", *val = "data/kjv/val.bin";
    CHECK_MSG(access(train, R_OK) == 0, "%s is missing: run `make data` first", train);
    enum { STEPS = 200, WINDOW = 20 };
    static float curve[2][STEPS];
    float final[2];
    for (int precision = 0; precision < 2; precision++) {
        ms_config c;
        ms_config_defaults(&c);
        c.train.steps = STEPS;
        c.train.lr = 2e-3f;
        c.train.warmup = 20;
        c.train.eval_batches = 8;
        c.train_path = train;
        c.val_path = val;
        c.tokenizer = "bytes";
        c.precision = precision;
        ms_engine *e;
        CHECK_OK(ms_engine_create(&c, &e));
        ms_step_stats st;
        for (int s = 0; s < STEPS; s++) {
            CHECK_OK(ms_engine_step(e, &st));
            curve[precision][s] = st.loss;
        }
        CHECK_OK(ms_engine_eval(e, &final[precision]));
        ms_engine_free(e);
    }
    double worst = 0;
    for (int s = 0; s + WINDOW <= STEPS; s += WINDOW) {
        double a = 0, b = 0;
        for (int k = s; k < s + WINDOW; k++) a += curve[0][k], b += curve[1][k];
        double rel = fabs(b - a) / a;
        if (rel > worst) worst = rel;
        CHECK_MSG(rel < 0.02, "steps %d..%d: fp32 mean loss %.4f, bf16 %.4f (%.2f%% apart)", s, s + WINDOW - 1,
                  a / WINDOW, b / WINDOW, 100 * rel);
    }
    CHECK_NEAR(final[1], final[0], 0, 0.02);
    CHECK_MSG(curve[1][STEPS - 1] < 0.6 * curve[1][0], "bf16 did not learn: %.3f -> %.3f", curve[1][0],
              curve[1][STEPS - 1]);
    fprintf(stderr, "fp32 val %.4f, bf16 val %.4f, worst window %.2f%%\n", final[0], final[1], 100 * worst);
    return 0;
}
