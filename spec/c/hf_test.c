/*
 * spec/c/hf_test.c — safetensors and Hugging Face interop: the JSON reader,
 * the safetensors reader and writer (values, bf16 rounding, f16, every kind of
 * malformed file refused with its message), the Hugging Face name map, export
 * then import giving identical weights and logits, sharding, and an export
 * that fails leaving nothing behind.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ckpt/hf.h"
#include "ckpt/safetensors.h"
#include "core/json.h"
#include "cpu/kernels.h"
#include "engine.h"
#include "fixtures.h"

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}
static void rm_tree(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static int make_tmp(char *dir, size_t len) {
    snprintf(dir, len, "/tmp/ms-hf-spec-XXXXXX");
    return mkdtemp(dir) ? 0 : 1;
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Entries of dir (not . and ..). */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* A safetensors file from a header text and raw data bytes. */
static const char *st_file(const char *dir, const char *name, const char *header, const void *data, size_t n) {
    static char buf[8192];
    uint64_t len = strlen(header);
    memcpy(buf, &len, 8);
    memcpy(buf + 8, header, len);
    memcpy(buf + 8 + len, data, n);
    return fixture_file(dir, name, buf, 8 + len + n);
}

/* ---- JSON --------------------------------------------------------------------- */

TEST(json_reads_strictly) {
    ms_json *v;
    const char *ok = " {\"a\": [1, -2.5e3, true, false, null], \"b\": \"x\\u00e9\\ud83d\\ude00\\n\", "
                     "\"big\": 9007199254740993} ";
    CHECK_OK(ms_json_parse(ok, strlen(ok), &v));
    CHECK(v->kind == MS_JSON_OBJECT && v->n == 3);
    const ms_json *a = ms_json_get(v, "a");
    CHECK(a && a->kind == MS_JSON_ARRAY && a->n == 5);
    CHECK(a->items[0].is_int && a->items[0].integer == 1);
    CHECK(!a->items[1].is_int && a->items[1].number == -2500.0);
    CHECK(a->items[2].kind == MS_JSON_BOOL && a->items[2].boolean && !a->items[3].boolean);
    CHECK(a->items[4].kind == MS_JSON_NULL);
    CHECK(strcmp(ms_json_get(v, "b")->string, "x\xc3\xa9\xf0\x9f\x98\x80\n") == 0);
    CHECK(ms_json_get(v, "big")->integer == 9007199254740993LL); /* exact beyond 2^53 */
    ms_json_free(v);
    struct { const char *text, *msg; } bad[] = {
        {"{\"a\": 1,}", "at byte 8: expected a key (a string), found '}'"},
        {"[1, 2", "at byte 5: expected ',' or ']', but the text ends there"},
        {"{\"a\": 1, \"a\": 2}", "at byte 9: the key \"a\" appears twice in one object"},
        {"{\"a\": 01}", "at byte 7: expected ',' or '}', found '1'"},
        {"{\"a\": NaN}", "at byte 6: expected a JSON value, found 'N'"},
        {"\"a\tb\"", "at byte 2: control characters in strings must be escaped"},
        {"{} x", "at byte 3: expected the end of the text after the value, found 'x'"},
        {"\"\\ud800\"", "a \\u escape of a high surrogate must be followed by one of a low surrogate"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_FAILS(ms_json_parse(bad[i].text, strlen(bad[i].text), &v), MS_ERR_FORMAT, bad[i].msg);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CHECK_FAILS(ms_json_parse(deep, 200, &v), MS_ERR_FORMAT, "nesting deeper than 64 levels");
    return 0;
}

/* ---- safetensors ---------------------------------------------------------------- */

TEST(safetensors_round_trip_f32_and_bf16_rounding) {
    char dir[64];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    char path[128];
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    float a[6], b[3] = {1.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f};
    fill_random(a, 6, 3, 2.0f);
    ms_st_spec specs[2] = {{.name = "a", .ndim = 2, .shape = {2, 3}}, {.name = "b.weight", .ndim = 1, .shape = {3}}};
    const char *k[] = {"format"}, *val[] = {"pt"};
    for (int dtype = MS_ST_F32; dtype <= MS_ST_BF16; dtype++) {
        ms_st_writer w;
        CHECK_OK(ms_st_begin(&w, path, dtype, specs, 2, k, val, 1));
        CHECK_OK(ms_st_write(&w, a, 6));
        CHECK_OK(ms_st_write(&w, b, 3));
        CHECK_OK(ms_st_commit(&w));
        ms_st_file f;
        CHECK_OK(ms_st_open(&f, path));
        CHECK(f.n == 2 && f.data_start % 8 == 0);
        const ms_st_tensor *ta = ms_st_find(&f, "a"), *tb = ms_st_find(&f, "b.weight");
        CHECK(ta && tb && !ms_st_find(&f, "c") && !ms_st_find(&f, "__metadata__"));
        CHECK(ta->dtype == dtype && ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3 && tb->numel == 3);
        float ra[6], rb[3], part[2];
        CHECK_OK(ms_st_read(&f, ta, 0, 6, ra));
        CHECK_OK(ms_st_read(&f, tb, 0, 3, rb));
        CHECK_OK(ms_st_read(&f, ta, 3, 2, part)); /* a slice, as a rank reads its range */
        for (int i = 0; i < 6; i++) {
            float want = a[i];
            if (dtype == MS_ST_BF16) { /* round to nearest even on the upper 16 bits */
                uint32_t bits;
                memcpy(&bits, &want, 4);
                bits = (bits + 0x7fff + ((bits >> 16) & 1)) & 0xffff0000u;
                memcpy(&want, &bits, 4);
            }
            CHECK_MSG(ra[i] == want, "%s a[%d] = %.9g, want %.9g", ms_st_dtype_name(dtype), i, ra[i], want);
        }
        CHECK(part[0] == ra[3] && part[1] == ra[4]);
        if (dtype == MS_ST_F32) {
            CHECK(rb[0] == b[0] && rb[1] == b[1] && rb[2] == b[2]);
        } else { /* ties go to the even neighbour */
            CHECK(rb[0] == 1.0f && rb[1] == 1.0f && rb[2] == 1.0f + 0x1p-6f);
        }
        ms_st_close(&f);
    }
    rm_tree(dir);
    return 0;
}

TEST(safetensors_reads_f16) {
    char dir[64];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    uint16_t h[6] = {0x3c00, 0xc000, 0x0001, 0x7c00, 0x3555, 0x8000};
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]}}";
    ms_st_file f;
    CHECK_OK(ms_st_open(&f, st_file(dir, "h.safetensors", hdr, h, sizeof h)));
    float out[6];
    CHECK_OK(ms_st_read(&f, ms_st_find(&f, "h"), 0, 6, out));
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0x1p-24f && isinf(out[3]) && out[3] > 0);
    CHECK(out[4] == 0x1.554p-2f && out[5] == 0.0f && signbit(out[5]));
    ms_st_close(&f);
    rm_tree(dir);
    return 0;
}

TEST(safetensors_refuses_malformed_files) {
    char dir[64];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    float data[4] = {1, 2, 3, 4};
    ms_st_file f;
    const char *p;
    struct { const char *header, *msg; size_t bytes; } bad[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},}",
         "the header is not valid JSON: at byte 55: expected a key (a string), found '}'", 16},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,32]}}",
         "tensor w: data_offsets [0, 32] are out of range: the data section holds 16 bytes (a truncated file?)", 16},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,4]}}",
         "tensor w: data_offsets [8, 4] are out of range: the data section holds 16 bytes and begin must not "
         "exceed end", 16},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}",
         "tensor w: data_offsets [0, 16] span 16 bytes, but 3 values of F32 need 12", 16},
        {"{\"w\":{\"dtype\":\"F33\",\"shape\":[4],\"data_offsets\":[0,16]}}", "tensor w: unknown dtype \"F33\"", 16},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}",
         "tensor w: shape[0] is -4; expected a size >= 0", 16},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", "tensor w: its header entry has no data_offsets", 16},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         "tensor v: data_offsets [4, 12] overlap tensor w, which ends at 8", 12},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "the tensors cover 8 bytes of data, but the file holds 16 after its header; trailing bytes", 16},
        {"{\"__metadata__\":{\"format\":1},\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
         "__metadata__.format is a number; expected a string", 16},
        {"[1]", "the header does not start with '{'", 16},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = st_file(dir, "bad.safetensors", bad[i].header, data, bad[i].bytes);
        char want[512];
        snprintf(want, sizeof want, "safetensors %s: %s", p, bad[i].msg);
        CHECK_FAILS(ms_st_open(&f, p), MS_ERR_FORMAT, want);
    }
    /* the length prefix itself */
    p = fixture_file(dir, "short.safetensors", "abc", 3);
    CHECK_FAILS(ms_st_open(&f, p), MS_ERR_FORMAT, "the file has 3 bytes, fewer than the 8 of the header length");
    uint64_t huge = 1000;
    p = fixture_file(dir, "long.safetensors", &huge, 8);
    CHECK_FAILS(ms_st_open(&f, p), MS_ERR_FORMAT, "the header length 1000 runs past the end of the file (8 bytes); "
                "it is truncated");
    /* a valid file cut short */
    p = st_file(dir, "cut.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 10);
    CHECK_FAILS(ms_st_open(&f, p), MS_ERR_FORMAT, "tensor w: data_offsets [0, 16] are out of range: the data "
                "section holds 10 bytes (a truncated file?)");
    /* values of a dtype that is not a float */
    p = st_file(dir, "int.safetensors", "{\"w\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 16);
    CHECK_OK(ms_st_open(&f, p));
    float out[4];
    CHECK_FAILS(ms_st_read(&f, ms_st_find(&f, "w"), 0, 4, out), MS_ERR_FORMAT,
                "tensor w has dtype I32; moonspeed reads weights of dtype F32, BF16 or F16");
    ms_st_close(&f);
    CHECK_FAILS(ms_st_open(&f, "/nonexistent/x.safetensors"), MS_ERR_IO,
                "safetensors /nonexistent/x.safetensors: No such file or directory");
    rm_tree(dir);
    return 0;
}

/* ---- the Hugging Face layout ---------------------------------------------------- */

static ms_config hf_config(int tie) {
    ms_config c;
    ms_config_defaults(&c);
    c.model = (ms_model_config){.vocab_size = 300, .dim = 32, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                                .ffn_dim = 48, .max_seq_len = 16, .tie_embeddings = tie, .rope_theta = 500000.0f,
                                .norm_eps = 1e-5f, .init_std = 0.2f};
    c.train.seq_len = 16;
    c.train.batch = 2;
    c.train.micro_batch = 2;
    c.threads = 1;
    return c;
}

TEST(hf_names_every_tensor_in_one_map) {
    ms_config c = hf_config(0);
    c.model.n_layers = 1;
    ms_model m;
    CHECK_OK(ms_model_build(&m, &c, 0, 1, 0));
    const char *want[] = {
        "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.norm.weight",
        "lm_head.weight",
    };
    CHECK(m.n_tensors == 12);
    for (int t = 0; t < m.n_tensors; t++) {
        char name[128];
        ms_hf_name(&m, t, name, sizeof name);
        CHECK_MSG(strcmp(name, want[t]) == 0, "tensor %d (%s) is named %s, want %s", t, m.tensors[t].name, name,
                  want[t]);
    }
    ms_model_free(&m);
    return 0;
}

/* Master weights of every unit (this rank owns them all at world 1, stage 0). */
static float *all_master(ms_engine *e, int64_t *n) {
    int64_t total = 0;
    for (int u = 0; u < e->model.n_units; u++) total += e->model.units[u].numel;
    float *out = malloc((size_t)total * 4), *o = out;
    for (int u = 0; u < e->model.n_units; u++) {
        memcpy(o, e->model.units[u].master, (size_t)e->model.units[u].numel * 4);
        o += e->model.units[u].numel;
    }
    *n = total;
    return out;
}

static int round_trip(int tie) {
    char dir[64];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    ms_config c = hf_config(tie);
    c.train.seed = 7;
    ms_engine *a, *b;
    CHECK_OK(ms_engine_create(&c, &a));
    char bin[128], out32[128], out16[128], sharded[128];
    snprintf(bin, sizeof bin, "%s/model.bin", dir);
    snprintf(out32, sizeof out32, "%s/hf32", dir);
    snprintf(out16, sizeof out16, "%s/hf16", dir);
    snprintf(sharded, sizeof sharded, "%s/sharded", dir);
    CHECK_OK(ms_engine_save_weights(a, bin));
    ms_hf_export_options o = {.dtype = MS_F32, .bos_token = 1, .eos_token = 2};
    ms_hf_export_report rep;
    CHECK_OK(ms_hf_export(&c, bin, out32, &o, &rep));
    CHECK(rep.shards == 1 && rep.tensors == 2 * 9 + 2 + !tie);
    o.dtype = MS_BF16;
    CHECK_OK(ms_hf_export(&c, dir, out16, &o, &rep)); /* a directory holding model.bin is a source too */
    o.dtype = MS_F32;
    o.max_shard_bytes = 20000;
    CHECK_OK(ms_hf_export(&c, bin, sharded, &o, &rep));
    CHECK_MSG(rep.shards >= 4, "%d shards", rep.shards);
    char shard[192];
    snprintf(shard, sizeof shard, "%s/model-%05d-of-%05d.safetensors", sharded, rep.shards, rep.shards);
    CHECK(exists(shard));

    int64_t n, nb;
    float *want = all_master(a, &n);
    int32_t tokens[16];
    for (int i = 0; i < 16; i++) tokens[i] = (i * 37 + 5) % 300;
    float *la = malloc(16 * 300 * 4), *lb = malloc(16 * 300 * 4);
    CHECK_OK(ms_engine_logits(a, tokens, 16, la));
    const char *srcs[] = {out32, sharded, out16};
    for (int s = 0; s < 3; s++) {
        ms_config ci = c;
        ci.train.seed = 99; /* meta init would differ */
        ci.init_from = srcs[s];
        CHECK_OK(ms_engine_create(&ci, &b));
        float *got = all_master(b, &nb);
        CHECK(nb == n);
        for (int64_t i = 0; i < n; i++) {
            float w = want[i];
            if (s == 2) w = cpu_bf16_round(w);
            CHECK_MSG(got[i] == w, "%s: element %lld is %.9g, want %.9g", srcs[s], (long long)i, got[i], w);
        }
        free(got);
        CHECK_OK(ms_engine_logits(b, tokens, 16, lb));
        if (s < 2) CHECK(memcmp(la, lb, 16 * 300 * 4) == 0); /* identical weights, identical logits */
        ms_engine_free(b);
    }
    free(want);
    free(la);
    free(lb);
    ms_engine_free(a);
    rm_tree(dir);
    return 0;
}

TEST(hf_export_then_import_gives_identical_weights) { return round_trip(0); }
TEST(hf_export_then_import_gives_identical_weights_tied) { return round_trip(1); }

/* A directory of config.json + model.safetensors with the model's tensors,
 * one of them dropped (drop >= 0) or with a wrong shape (reshape >= 0). */
static int write_hf_dir(const char *dir, const ms_config *c, int drop, int reshape) {
    ms_model m;
    if (ms_model_build(&m, c, 0, 1, 0) != MS_OK) return 1;
    mkdir(dir, 0755);
    ms_text t = {0};
    ms_hf_config_json(&t, &c->model, MS_F32, -1, -1);
    fixture_file(dir, "config.json", t.s, t.len);
    ms_text_free(&t);
    static char names[64][128];
    ms_st_spec specs[64];
    int n = 0;
    int64_t total = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        if (i == drop) continue;
        ms_hf_name(&m, i, names[n], 128);
        specs[n] = (ms_st_spec){.name = names[n], .ndim = m.tensors[i].ndim};
        for (int d = 0; d < m.tensors[i].ndim; d++) specs[n].shape[d] = m.tensors[i].shape[d];
        if (i == reshape) specs[n].shape[0] /= 2;
        total += specs[n].shape[0] * (specs[n].ndim > 1 ? specs[n].shape[1] : 1);
        n++;
    }
    ms_model_free(&m);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    float *zeros = calloc((size_t)total, 4);
    ms_st_writer w;
    int bad = ms_st_begin(&w, path, MS_ST_F32, specs, n, NULL, NULL, 0) != MS_OK ||
              ms_st_write(&w, zeros, total) != MS_OK || ms_st_commit(&w) != MS_OK;
    free(zeros);
    return bad;
}

TEST(hf_import_refuses_mismatches) {
    char dir[64], sub[128], want[512];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    ms_config c = hf_config(0);
    ms_engine *e;
    /* a complete directory imports */
    snprintf(sub, sizeof sub, "%s/ok", dir);
    CHECK(write_hf_dir(sub, &c, -1, -1) == 0);
    ms_config ci = c;
    ci.init_from = sub;
    CHECK_OK(ms_engine_create(&ci, &e));
    ms_engine_free(e);
    /* config.json of another shape: every differing key, with the recipe key */
    ms_config other = c;
    other.model.dim = 64;
    other.model.n_kv_heads = 4;
    other.model.rope_theta = 10000.0f;
    other.model.tie_embeddings = 1;
    CHECK(write_hf_dir(sub, &other, -1, -1) == 0);
    snprintf(want, sizeof want, "init.from: %s/config.json differs from the recipe's model section: hidden_size = 64 "
             "but model.dim = 32; num_key_value_heads = 4 but model.n_kv_heads = 2; head_dim = 16 but model.dim / "
             "model.n_heads = 8; tie_word_embeddings = true but model.tie_embeddings = false; rope_theta = 10000 "
             "but model.rope_theta = 500000; set the model section", sub);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_INVALID, want);
    /* a missing tensor */
    snprintf(sub, sizeof sub, "%s/missing", dir);
    CHECK(write_hf_dir(sub, &c, 3, -1) == 0); /* block.0.attn.wk */
    ci.init_from = sub;
    snprintf(want, sizeof want, "init.from: Hugging Face directory %s: tensor model.layers.0.self_attn.k_proj.weight "
             "(our block.0.attn.wk) is missing from model.safetensors", sub);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_FORMAT, want);
    /* a tensor of another shape */
    snprintf(sub, sizeof sub, "%s/shape", dir);
    CHECK(write_hf_dir(sub, &c, -1, 6) == 0); /* block.0.mlp_norm */
    ci.init_from = sub;
    snprintf(want, sizeof want, "init.from: safetensors %s/model.safetensors: tensor "
             "model.layers.0.post_attention_layernorm.weight has shape (16), but the recipe's model needs (32) for "
             "block.0.mlp_norm", sub);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_FORMAT, want);
    /* a weight of an integer dtype: patch "F32" to "I32" in one header entry (same size) */
    snprintf(sub, sizeof sub, "%s/dtype", dir);
    CHECK(write_hf_dir(sub, &c, -1, -1) == 0);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", sub);
    FILE *f = fopen(path, "r+b");
    char head[4096];
    CHECK(f && fread(head, 1, sizeof head, f) == sizeof head);
    const char *key = "\"model.norm.weight\":{\"dtype\":\"F32\"";
    char *at = memmem(head, sizeof head, key, strlen(key));
    CHECK(at);
    at[strlen("\"model.norm.weight\":{\"dtype\":\"")] = 'I';
    fseek(f, 0, SEEK_SET);
    fwrite(head, 1, sizeof head, f);
    fclose(f);
    ci.init_from = sub;
    snprintf(want, sizeof want, "init.from: safetensors %s: tensor model.norm.weight has dtype I32; moonspeed reads "
             "weights of dtype F32, BF16 or F16", path);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_FORMAT, want);
    /* no config.json */
    snprintf(path, sizeof path, "%s/config.json", sub);
    unlink(path);
    snprintf(want, sizeof want, "init.from: Hugging Face directory %s has no config.json", sub);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_INVALID, want);
    ci.init_from = "/nonexistent/model";
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_IO, "init.from: weights /nonexistent/model: No such file");
    rm_tree(dir);
    return 0;
}

TEST(hf_export_leaves_nothing_behind_when_it_fails) {
    char dir[64], bin[128], target[128], cut[128];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    ms_config c = hf_config(1);
    ms_engine *e;
    CHECK_OK(ms_engine_create(&c, &e));
    snprintf(bin, sizeof bin, "%s/model.bin", dir);
    CHECK_OK(ms_engine_save_weights(e, bin));
    ms_engine_free(e);
    /* a source that ends early: the first shards are written before the read fails */
    FILE *f = fopen(bin, "rb");
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fixture_file(dir, "cut.bin", buf, n - 4000);
    snprintf(cut, sizeof cut, "%s/cut.bin", dir);
    snprintf(target, sizeof target, "%s/out", dir);
    ms_hf_export_options o = {.dtype = MS_F32, .max_shard_bytes = 10000};
    CHECK_FAILS(ms_hf_export(&c, cut, target, &o, NULL), MS_ERR_FORMAT, "the file ends early; it is truncated");
    CHECK(!exists(target));
    CHECK(count_entries(dir) == 2); /* model.bin and cut.bin: no temporary left */
    /* a target that exists and is not empty is never written over */
    CHECK_OK(ms_hf_export(&c, bin, target, &o, NULL));
    CHECK(count_entries(target) >= 4);
    char want[256];
    snprintf(want, sizeof want, "export %s: the target already exists and is not empty; choose a new directory",
             target);
    CHECK_FAILS(ms_hf_export(&c, bin, target, &o, NULL), MS_ERR_INVALID, want);
    /* an unwritable place (the parent is a file) */
    snprintf(target, sizeof target, "%s/model.bin/out", dir);
    CHECK_FAILS(ms_hf_export(&c, bin, target, &o, NULL), MS_ERR_IO, "/model.bin/out: Not a directory");
    CHECK(count_entries(dir) == 3);
    /* a source of another shape */
    ms_config other = c;
    other.model.ffn_dim = 64;
    snprintf(target, sizeof target, "%s/other", dir);
    CHECK_FAILS(ms_hf_export(&other, bin, target, &o, NULL), MS_ERR_FORMAT, "unit 1 is block.0 with");
    CHECK(!exists(target) && count_entries(dir) == 3);
    rm_tree(dir);
    return 0;
}

TEST(hf_config_check_reads_every_transformers_spelling) {
    char dir[64], want[512];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    ms_config c = hf_config(1);
    const char *shape = "\"vocab_size\": 300, \"hidden_size\": 32, \"intermediate_size\": 48, "
                        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
                        "\"tie_word_embeddings\": true, \"rms_norm_eps\": 1e-05";
    char text[1024];
    /* transformers 4: rope_theta at the top; 5: rope_parameters; either may spell plain RoPE out */
    const char *ok[] = {
        "{%s, \"rope_theta\": 500000.0, \"rope_scaling\": null, \"model_type\": \"llama\"}",
        "{%s, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 500000}}",
        "{%s, \"rope_theta\": 500000, \"rope_scaling\": {\"rope_type\": \"default\"}, \"hidden_act\": \"silu\"}",
    };
    for (int i = 0; i < 3; i++) {
        snprintf(text, sizeof text, ok[i], shape);
        CHECK_OK(ms_hf_config_check(fixture_file(dir, "config.json", text, strlen(text)), &c.model));
    }
    struct { const char *text, *msg; } bad[] = {
        {"{%s, \"rope_theta\": 500000, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}",
         "rope_scaling must be null or absent for moonspeed's Llama (it is not supported)"},
        {"{%s, \"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 500000}}",
         "rope_parameters.rope_type must be \"default\" for moonspeed's Llama (scaled RoPE is not supported)"},
        {"{%s, \"rope_theta\": 500000, \"attention_bias\": true, \"hidden_act\": \"gelu\", \"model_type\": \"gpt2\"}",
         "model_type is \"gpt2\", expected \"llama\"; hidden_act must be \"silu\" for moonspeed's Llama; "
         "attention_bias must be false for moonspeed's Llama"},
        {"{%s}", "rope_theta = 10000 but model.rope_theta = 500000"}, /* LlamaConfig's default when absent */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, bad[i].text, shape);
        const char *p = fixture_file(dir, "config.json", text, strlen(text));
        snprintf(want, sizeof want, "%s/config.json differs from the recipe's model section: %s; set the model",
                 dir, bad[i].msg);
        CHECK_FAILS(ms_hf_config_check(p, &c.model), MS_ERR_INVALID, want);
    }
    const char *p = fixture_file(dir, "config.json", "{\"vocab_size\": 300,}", 20);
    snprintf(want, sizeof want, "%s/config.json is not valid JSON: at byte 19: expected a key", dir);
    CHECK_FAILS(ms_hf_config_check(p, &c.model), MS_ERR_FORMAT, want);
    rm_tree(dir);
    return 0;
}

TEST(hf_import_checks_the_index_and_refuses_extra_tensors) {
    char dir[64], sub[128], want[512], path[256];
    CHECK(make_tmp(dir, sizeof dir) == 0);
    ms_config c = hf_config(1);
    ms_engine *e;
    snprintf(sub, sizeof sub, "%s/m", dir);
    CHECK(write_hf_dir(sub, &c, -1, -1) == 0);
    ms_config ci = c;
    ci.init_from = sub;
    /* an index whose file escapes the directory */
    const char *escape = "{\"weight_map\": {\"model.norm.weight\": \"../model.safetensors\"}}";
    fixture_file(sub, "model.safetensors.index.json", escape, strlen(escape));
    snprintf(want, sizeof want, "init.from: %s/model.safetensors.index.json: weight_map[\"model.norm.weight\"] is a "
             "path outside the directory; expected the name of a file in %s", sub, sub);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_FORMAT, want);
    /* an index that places a tensor in a file without it */
    snprintf(path, sizeof path, "%s/other.safetensors", sub);
    ms_st_spec one = {.name = "model.norm.weight", .ndim = 1, .shape = {32}};
    float zeros[32] = {0};
    ms_st_writer w;
    CHECK_OK(ms_st_begin(&w, path, MS_ST_F32, &one, 1, NULL, NULL, 0));
    CHECK_OK(ms_st_write(&w, zeros, 32));
    CHECK_OK(ms_st_commit(&w));
    const char *misplaced = "{\"weight_map\": {\"model.embed_tokens.weight\": \"other.safetensors\"}}";
    fixture_file(sub, "model.safetensors.index.json", misplaced, strlen(misplaced));
    snprintf(want, sizeof want, "init.from: safetensors %s: tensor model.embed_tokens.weight is missing, though the "
             "index places it in this file", path);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_FORMAT, want);
    const char *broken = "{\"weight_map\": [\"model.safetensors\"]}";
    fixture_file(sub, "model.safetensors.index.json", broken, strlen(broken));
    snprintf(want, sizeof want, "init.from: %s/model.safetensors.index.json: weight_map is an array; expected an "
             "object of tensor name -> file name", sub);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_FORMAT, want);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sub);
    unlink(path);
    /* a tensor the model has no place for (an attention bias) is refused, not dropped */
    snprintf(path, sizeof path, "%s/model.safetensors", sub);
    ms_model m;
    CHECK_OK(ms_model_build(&m, &c, 0, 1, 0));
    static char names[40][128];
    ms_st_spec specs[40];
    int64_t total = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        ms_hf_name(&m, i, names[i], 128);
        specs[i] = (ms_st_spec){.name = names[i], .ndim = m.tensors[i].ndim};
        memcpy(specs[i].shape, m.tensors[i].shape, sizeof m.tensors[i].shape);
        total += m.tensors[i].numel;
    }
    specs[m.n_tensors] = (ms_st_spec){.name = "model.layers.0.self_attn.q_proj.bias", .ndim = 1, .shape = {32}};
    float *vals = calloc((size_t)total + 32, 4);
    CHECK_OK(ms_st_begin(&w, path, MS_ST_BF16, specs, m.n_tensors + 1, NULL, NULL, 0));
    CHECK_OK(ms_st_write(&w, vals, total + 32));
    CHECK_OK(ms_st_commit(&w));
    free(vals);
    ms_model_free(&m);
    snprintf(want, sizeof want, "init.from: safetensors %s: tensor model.layers.0.self_attn.q_proj.bias is not part "
             "of a Llama model of the recipe's shape; moonspeed would ignore it, so it refuses the file", path);
    CHECK_FAILS(ms_engine_create(&ci, &e), MS_ERR_FORMAT, want);
    rm_tree(dir);
    return 0;
}
