/*
 * spec/c/offload_test.c — optimizer offload on one rank (zero/offload.h):
 * which units go to the host, what the plan and the reservations say, that
 * an fp32 run is bit for bit the run kept on the device, that a bf16 run
 * (gradients travel as bf16) tracks it, and that the state reads and writes
 * through the engine's API wait for the host's updates. Multi-rank offload
 * is in zero_test.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine.h"
#include "fixtures.h"

enum { STEPS = 12 };

static ms_config config(const char *dir, float offload, int32_t precision) {
    ms_config c = fixture_tiny(dir);
    c.threads = 1;
    c.precision = precision;
    c.train.lr = 3e-3f;
    c.offload_optimizer = offload >= 0;
    c.offload_ratio = offload >= 0 ? offload : 1.0f;
    c.train.clip = 1.45f; /* some steps of this model are clipped (norms 1.2 to 1.9), others not */
    return c;
}

/* Train STEPS steps; the losses, how many steps were clipped, and every
 * master weight (in unit order). */
static int clipped;
static int train(const ms_config *c, float *losses, float **weights, int64_t *n_weights) {
    ms_engine *e;
    if (ms_engine_create(c, &e) != MS_OK) return 1;
    for (int s = 0; s < STEPS; s++) {
        ms_step_stats st;
        if (ms_engine_step(e, &st) != MS_OK) return 1;
        losses[s] = st.loss;
        clipped += st.grad_norm > c->train.clip;
    }
    int64_t total = 0;
    for (int t = 0; t < e->model.n_tensors; t++) total += e->model.tensors[t].numel;
    float *w = malloc((size_t)total * 4);
    int64_t at = 0;
    for (int u = 0; u < ms_engine_unit_count(e); u++) {
        ms_unit_info ui;
        ms_engine_unit(e, u, &ui);
        for (int i = 0; i < ui.n_tensors; i++) {
            ms_tensor_info ti;
            ms_engine_tensor(e, u, i, &ti);
            if (ms_engine_tensor_read(e, u, i, MS_VIEW_MASTER, 0, w + at, ti.numel) != MS_OK) return 1;
            at += ti.numel;
        }
    }
    ms_engine_free(e);
    *weights = w;
    *n_weights = total;
    return 0;
}

/* The last units in forward order go first, whole, nearest the ratio. */
TEST(offload_takes_the_last_units_nearest_the_ratio) {
    ms_config c = config("/nonexistent", 0.5f, MS_PRECISION_FP32);
    ms_model m;
    CHECK_OK(ms_model_build(&m, &c, 0, 1, 0));
    double total = 0, off = 0;
    int first = -1;
    for (int u = 0; u < m.n_units; u++) {
        total += (double)m.units[u].numel;
        if (m.units[u].split.offload) {
            off += (double)m.units[u].numel;
            if (first < 0) first = u;
        }
    }
    for (int u = first; u < m.n_units; u++) CHECK_MSG(m.units[u].split.offload, "unit %d is not offloaded", u);
    CHECK(first > 0);
    /* one unit more or less would be farther from half */
    double more = off + (double)m.units[first - 1].numel, less = off - (double)m.units[first].numel;
    CHECK(fabs(off - 0.5 * total) <= fabs(more - 0.5 * total) && fabs(off - 0.5 * total) <= fabs(less - 0.5 * total));
    ms_model_free(&m);
    c.offload_ratio = 0.0f;
    CHECK_OK(ms_model_build(&m, &c, 0, 1, 0));
    for (int u = 0; u < m.n_units; u++) CHECK(!m.units[u].split.offload);
    ms_model_free(&m);
    c.offload_ratio = 1.0f;
    CHECK_OK(ms_model_build(&m, &c, 0, 1, 0));
    for (int u = 0; u < m.n_units; u++) CHECK(m.units[u].split.offload);
    ms_model_free(&m);
    return 0;
}

/* The host holds the offloaded units' master weights, moments and gradient
 * (with overlap twice the state, and the new compute parameters); the device
 * no longer does; the engine reserves exactly the plan. */
TEST(offload_plan_moves_the_optimizer_state_to_the_host) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    ms_config none = config(dir, -1, MS_PRECISION_BF16), all = config(dir, 1.0f, MS_PRECISION_BF16);
    ms_plan p0, p1, p2;
    CHECK_OK(ms_plan_compute(&none, &p0));
    all.offload_overlap = 0;
    CHECK_OK(ms_plan_compute(&all, &p1));
    all.offload_overlap = 1;
    CHECK_OK(ms_plan_compute(&all, &p2));
    CHECK(p0.offload_units == 0 && p1.offload_units == p1.n_units && p1.offload_params == p1.n_params);
    CHECK(p1.device_bytes.master == 0 && p1.device_bytes.optimizer == 0);
    CHECK(p1.host_bytes.master == p0.device_bytes.master);
    CHECK(p1.host_bytes.optimizer == p0.device_bytes.optimizer);
    CHECK(p1.host_bytes.grads > 0 && p1.device_bytes.grads == p0.device_bytes.grads);
    CHECK(p1.host_bytes.params == 0);
    CHECK(p2.device_bytes.total == p1.device_bytes.total);
    CHECK(p2.host_bytes.master == 2 * p1.host_bytes.master && p2.host_bytes.optimizer == 2 * p1.host_bytes.optimizer);
    CHECK(p2.host_bytes.params == p2.host_bytes.grads); /* the new parameters beside the gradient, both compute dtype */
    for (int overlap = 0; overlap <= 1; overlap++) {
        all.offload_overlap = overlap;
        ms_engine *e;
        CHECK_OK(ms_engine_create(&all, &e));
        for (int p = 0; p < MS_MEM_COUNT; p++) CHECK(e->host[p].used == e->host[p].capacity);
        ms_memory_report mem;
        ms_engine_memory(e, &mem);
        CHECK(mem.reserved.total == p1.device_bytes.total);
        ms_engine_free(e);
    }
    fixture_remove(dir);
    return 0;
}

/* fp32: the host runs the same AdamW on the same fp32 gradients: bit for bit. */
TEST(offload_fp32_equals_the_device_bit_for_bit) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    float ref[STEPS], got[STEPS], *wr, *wg;
    int64_t nr, ng;
    ms_config c = config(dir, -1, MS_PRECISION_FP32);
    clipped = 0;
    CHECK(train(&c, ref, &wr, &nr) == 0);
    CHECK_MSG(ref[STEPS - 1] < 0.9f * ref[0], "did not learn: %.4f -> %.4f", ref[0], ref[STEPS - 1]);
    CHECK_MSG(clipped > 0 && clipped < STEPS, "%d of %d steps clipped; the spec needs both kinds", clipped, STEPS);
    /* some steps clipped, others not: with overlap some bets are kept and others recomputed */
    float ratios[3] = {0.0f, 0.5f, 1.0f};
    for (int k = 0; k < 6; k++) {
        c = config(dir, ratios[k % 3], MS_PRECISION_FP32);
        c.offload_overlap = k >= 3;
        CHECK(train(&c, got, &wg, &ng) == 0);
        CHECK(ng == nr);
        CHECK_MSG(memcmp(ref, got, sizeof ref) == 0, "ratio %.1f, overlap %d: the losses differ",
                  (double)ratios[k % 3], c.offload_overlap);
        CHECK_MSG(memcmp(wr, wg, (size_t)nr * 4) == 0, "ratio %.1f, overlap %d: the weights differ",
                  (double)ratios[k % 3], c.offload_overlap);
        free(wg);
    }
    free(wr);
    fixture_remove(dir);
    return 0;
}

/* bf16: gradients reach the host rounded to bf16; the run tracks the device's. */
TEST(offload_bf16_tracks_the_device) {
    char dir[64];
    CHECK(fixture_shards(dir, sizeof dir) == 0);
    float ref[STEPS], got[STEPS], *wr, *wg;
    int64_t nr, ng;
    ms_config c = config(dir, -1, MS_PRECISION_BF16);
    CHECK(train(&c, ref, &wr, &nr) == 0);
    c = config(dir, 1.0f, MS_PRECISION_BF16);
    CHECK(train(&c, got, &wg, &ng) == 0);
    for (int s = 0; s < STEPS; s++)
        CHECK_MSG(fabsf(got[s] - ref[s]) <= 1e-2f * ref[s], "step %d: %.6f offloaded, %.6f on the device", s,
                  (double)got[s], (double)ref[s]);
    double worst = 0;
    for (int64_t i = 0; i < nr; i++) worst = fmax(worst, fabs(wg[i] - wr[i]));
    CHECK_MSG(worst < 5e-3, "weights differ by up to %g", worst);
    free(wr);
    free(wg);
    fixture_remove(dir);
    return 0;
}

/* offload.params at stage 3: the shards of the offloaded units live on the
 * host (the persistent tied embedding stays on the device); refused, saying
 * what it needs, at other stages or without the optimizer offloaded. */
TEST(offload_params_moves_the_shards_to_the_host) {
    ms_config c = config("/nonexistent", 1.0f, MS_PRECISION_BF16);
    c.train_path = c.val_path = NULL;
    c.world_size = 2;
    c.train.batch = 8;
    c.zero_stage = 3;
    ms_plan p0, p1;
    CHECK_OK(ms_plan_compute(&c, &p0));
    c.offload_params = 1;
    CHECK_OK(ms_plan_compute(&c, &p1));
    CHECK(p0.host_bytes.params == 0 && p1.host_bytes.params > 0);
    CHECK(p1.device_bytes.params < p0.device_bytes.params);
    CHECK(p1.device_bytes.params + p1.host_bytes.params == p0.device_bytes.params + p0.host_bytes.params);
    c.zero_stage = 2;
    CHECK_FAILS(ms_plan_compute(&c, &p1), MS_ERR_INVALID, "it needs zero.stage = 3 and offload.optimizer = \"cpu\"");
    c.zero_stage = 3;
    c.offload_optimizer = 0;
    CHECK_FAILS(ms_plan_compute(&c, &p1), MS_ERR_INVALID, "(got stage 3, optimizer \"none\")");
    return 0;
}
