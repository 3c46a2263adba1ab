/*
 * ckpt/hf.c — the Hugging Face Llama layout: tensor names, config.json, and
 * the weight source that reads a Hugging Face directory (see source.h).
 *
 * The name map, in one place:
 *   embed.weight              model.embed_tokens.weight           (V, D)
 *   block.N.attn_norm         model.layers.N.input_layernorm.weight  (D)
 *   block.N.attn.wq|wk|wv|wo  model.layers.N.self_attn.{q,k,v,o}_proj.weight
 *   block.N.mlp_norm          model.layers.N.post_attention_layernorm.weight
 *   block.N.mlp.w_gate|w_up|w_down  model.layers.N.mlp.{gate,up,down}_proj.weight
 *   head.norm                 model.norm.weight                   (D)
 *   head.weight               lm_head.weight (V, D); absent when tied, as
 *                             save_pretrained writes tied models
 * Shapes are equal on both sides: our matrices are torch Linear (out, in).
 *
 * No row permutation of wq and wk: our RoPE (kernels/cpu/rope.c) pairs
 * element i of a head with element i + head_dim/2 (rotate_half), which is the
 * convention of Hugging Face's LlamaAttention, so HF q_proj/k_proj rows are
 * ours as they are. (Meta's original checkpoints pair adjacent elements
 * instead; Hugging Face's conversion script permutes their rows into this
 * order, so a Hugging Face directory never needs it.) spec/peers/hf_compare.py
 * checks this against transformers' logits.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt/hf.h"
#include "ckpt/safetensors.h"
#include "ckpt/source.h"
#include "core/json.h"
#include "core/status.h"

static const char *block_names[B_COUNT] = {
    [B_ATTN_NORM] = "input_layernorm.weight",     [B_WQ] = "self_attn.q_proj.weight",
    [B_WK] = "self_attn.k_proj.weight",           [B_WV] = "self_attn.v_proj.weight",
    [B_WO] = "self_attn.o_proj.weight",           [B_MLP_NORM] = "post_attention_layernorm.weight",
    [B_GATE] = "mlp.gate_proj.weight",            [B_UP] = "mlp.up_proj.weight",
    [B_DOWN] = "mlp.down_proj.weight",
};

void ms_hf_name(const ms_model *m, int t, char *buf, int len) {
    const ms_tensor *tt = &m->tensors[t];
    const ms_unit *u = &m->units[tt->unit];
    int index = t - u->first;
    if (u->kind == UNIT_EMBED) snprintf(buf, (size_t)len, "model.embed_tokens.weight");
    else if (u->kind == UNIT_BLOCK) snprintf(buf, (size_t)len, "model.layers.%d.%s", u->layer, block_names[index]);
    else snprintf(buf, (size_t)len, "%s", index == 0 ? "model.norm.weight" : "lm_head.weight");
}

/* ---- config.json ------------------------------------------------------------ */

/* The shortest decimal that reads back as the same float (1e-05, not 9.99999975e-06). */
static void float_text(char *buf, size_t len, float x) {
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, len, "%.*g", p, (double)x);
        if (strtof(buf, NULL) == x) return;
    }
}

void ms_hf_config_json(ms_text *t, const ms_model_config *c, int dtype, int bos, int eos) {
    char theta[32], eps[32], std[32];
    float_text(theta, sizeof theta, c->rope_theta);
    float_text(eps, sizeof eps, c->norm_eps);
    float_text(std, sizeof std, c->init_std);
    char bos_s[16] = "null", eos_s[16] = "null";
    if (bos >= 0) snprintf(bos_s, sizeof bos_s, "%d", bos);
    if (eos >= 0) snprintf(eos_s, sizeof eos_s, "%d", eos);
    ms_text_printf(t,
        "{\n"
        "  \"architectures\": [\"LlamaForCausalLM\"],\n"
        "  \"model_type\": \"llama\",\n"
        "  \"vocab_size\": %d,\n"
        "  \"hidden_size\": %d,\n"
        "  \"intermediate_size\": %d,\n"
        "  \"num_hidden_layers\": %d,\n"
        "  \"num_attention_heads\": %d,\n"
        "  \"num_key_value_heads\": %d,\n"
        "  \"head_dim\": %d,\n"
        "  \"hidden_act\": \"silu\",\n"
        "  \"max_position_embeddings\": %d,\n"
        "  \"rms_norm_eps\": %s,\n"
        "  \"rope_theta\": %s,\n"
        "  \"rope_scaling\": null,\n"
        "  \"attention_bias\": false,\n"
        "  \"attention_dropout\": 0.0,\n"
        "  \"mlp_bias\": false,\n"
        "  \"pretraining_tp\": 1,\n"
        "  \"initializer_range\": %s,\n"
        "  \"tie_word_embeddings\": %s,\n"
        "  \"bos_token_id\": %s,\n"
        "  \"eos_token_id\": %s,\n"
        "  \"torch_dtype\": \"%s\",\n"
        "  \"use_cache\": true\n"
        "}\n",
        c->vocab_size, c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->dim / c->n_heads,
        c->max_seq_len, eps, theta, std, c->tie_embeddings ? "true" : "false", bos_s, eos_s,
        dtype == MS_BF16 ? "bfloat16" : "float32");
}

/* Reads a whole small file (config.json, the index) into a NUL-terminated buffer. */
static ms_status slurp(const char *path, char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return ms_fail(MS_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 > cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > (size_t)MS_ST_MAX_HEADER) {
                free(buf);
                fclose(f);
                return ms_fail(MS_ERR_FORMAT, "%s: larger than %d bytes; this is not a small JSON file", path,
                               MS_ST_MAX_HEADER);
            }
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return ms_fail(MS_ERR_NOMEM, "%s: out of host memory", path);
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return ms_fail(MS_ERR_IO, "%s: read error", path);
    }
    buf[len] = 0;
    *out = buf;
    *n = len;
    return MS_OK;
}

static ms_status read_json(const char *path, ms_json **out) {
    char *text = NULL;
    size_t n = 0;
    TRY(slurp(path, &text, &n));
    ms_status st = ms_json_parse(text, n, out);
    free(text);
    if (st != MS_OK) return ms_fail_context(st, "%s is not valid JSON", path);
    return MS_OK;
}

/* One config.json key against the recipe's value; appends to the list of differences. */
static void differ_int(ms_text *d, const ms_json *cfg, const char *key, int have_default, int64_t dflt,
                       const char *ours, int64_t want) {
    const ms_json *v = ms_json_get(cfg, key);
    int64_t got = dflt;
    if (v && v->kind == MS_JSON_NULL && have_default) v = NULL;
    if (v) {
        if (v->kind == MS_JSON_BOOL) got = v->boolean;
        else if (v->kind == MS_JSON_NUMBER && v->is_int) got = v->integer;
        else {
            ms_text_printf(d, "; %s is %s, expected %lld (model.%s)", key, ms_json_kind_name(v->kind),
                           (long long)want, ours);
            return;
        }
    } else if (!have_default) {
        ms_text_printf(d, "; %s is missing, expected %lld (model.%s)", key, (long long)want, ours);
        return;
    }
    if (got == want) return;
    if (strcmp(key, "tie_word_embeddings") == 0)
        ms_text_printf(d, "; %s = %s but model.%s = %s", key, got ? "true" : "false", ours, want ? "true" : "false");
    else
        ms_text_printf(d, "; %s = %lld but model.%s = %lld", key, (long long)got, ours, (long long)want);
}

static void differ_float(ms_text *d, const ms_json *cfg, const char *key, double dflt, const char *ours,
                         float want) {
    const ms_json *v = ms_json_get(cfg, key);
    double got = dflt;
    if (v && v->kind != MS_JSON_NULL) {
        if (v->kind != MS_JSON_NUMBER) {
            ms_text_printf(d, "; %s is %s, expected %g (model.%s)", key, ms_json_kind_name(v->kind), (double)want,
                           ours);
            return;
        }
        got = v->number;
    }
    if (fabs(got - (double)want) <= 1e-6 * fabs((double)want)) return;
    ms_text_printf(d, "; %s = %g but model.%s = %g", key, got, ours, (double)want);
}

/* Keys whose value we cannot honour: absent, null, or exactly what we do. */
static void unsupported(ms_text *d, const ms_json *cfg, const char *key, const char *want_string, int want_false) {
    const ms_json *v = ms_json_get(cfg, key);
    if (!v || v->kind == MS_JSON_NULL) return;
    if (want_false && v->kind == MS_JSON_BOOL && !v->boolean) return;
    if (want_string && v->kind == MS_JSON_STRING && strcmp(v->string, want_string) == 0) return;
    if (want_string) ms_text_printf(d, "; %s must be \"%s\" for moonspeed's Llama", key, want_string);
    else if (want_false) ms_text_printf(d, "; %s must be false for moonspeed's Llama", key);
    else ms_text_printf(d, "; %s must be null or absent for moonspeed's Llama (it is not supported)", key);
}

ms_status ms_hf_config_check(const char *path, const ms_model_config *c) {
    ms_json *cfg;
    TRY(read_json(path, &cfg));
    if (cfg->kind != MS_JSON_OBJECT) {
        ms_json_free(cfg);
        return ms_fail(MS_ERR_FORMAT, "%s is %s; expected an object (a Hugging Face config)", path,
                       ms_json_kind_name(cfg->kind));
    }
    ms_text d = {0};
    const ms_json *mt = ms_json_get(cfg, "model_type");
    if (mt && (mt->kind != MS_JSON_STRING || strcmp(mt->string, "llama") != 0))
        ms_text_printf(&d, "; model_type is %s%.40s%s, expected \"llama\"", mt->kind == MS_JSON_STRING ? "\"" : "",
                       mt->kind == MS_JSON_STRING ? mt->string : ms_json_kind_name(mt->kind),
                       mt->kind == MS_JSON_STRING ? "\"" : "");
    differ_int(&d, cfg, "vocab_size", 0, 0, "vocab_size", c->vocab_size);
    differ_int(&d, cfg, "hidden_size", 0, 0, "dim", c->dim);
    differ_int(&d, cfg, "num_hidden_layers", 0, 0, "n_layers", c->n_layers);
    differ_int(&d, cfg, "num_attention_heads", 0, 0, "n_heads", c->n_heads);
    const ms_json *heads = ms_json_get(cfg, "num_attention_heads");
    int64_t kv_default = heads && heads->kind == MS_JSON_NUMBER && heads->is_int ? heads->integer : c->n_heads;
    differ_int(&d, cfg, "num_key_value_heads", 1, kv_default, "n_kv_heads", c->n_kv_heads);
    differ_int(&d, cfg, "intermediate_size", 0, 0, "ffn_dim", c->ffn_dim);
    differ_int(&d, cfg, "head_dim", 1, c->dim / c->n_heads, "dim / model.n_heads", c->dim / c->n_heads);
    differ_int(&d, cfg, "tie_word_embeddings", 1, 0, "tie_embeddings", c->tie_embeddings != 0);
    /* LlamaConfig's defaults where a key is absent */
    /* newer transformers write rope_parameters: {"rope_type": "default", "rope_theta": ...} */
    const ms_json *rope = ms_json_get(cfg, "rope_parameters");
    if (rope && rope->kind == MS_JSON_OBJECT) {
        const ms_json *type = ms_json_get(rope, "rope_type");
        if (type && (type->kind != MS_JSON_STRING || strcmp(type->string, "default") != 0))
            ms_text_printf(&d, "; rope_parameters.rope_type must be \"default\" for moonspeed's Llama (scaled "
                           "RoPE is not supported)");
        differ_float(&d, rope, "rope_theta", 10000.0, "rope_theta", c->rope_theta);
    } else {
        differ_float(&d, cfg, "rope_theta", 10000.0, "rope_theta", c->rope_theta);
    }
    differ_float(&d, cfg, "rms_norm_eps", 1e-6, "norm_eps", c->norm_eps);
    unsupported(&d, cfg, "hidden_act", "silu", 0);
    const ms_json *scaling = ms_json_get(cfg, "rope_scaling"), *kind = ms_json_get(scaling, "rope_type");
    if (!kind) kind = ms_json_get(scaling, "type");
    if (!(kind && kind->kind == MS_JSON_STRING && strcmp(kind->string, "default") == 0)) /* plain RoPE spelled out */
        unsupported(&d, cfg, "rope_scaling", NULL, 0);
    unsupported(&d, cfg, "attention_bias", NULL, 1);
    unsupported(&d, cfg, "mlp_bias", NULL, 1);
    ms_json_free(cfg);
    ms_status st = ms_text_done(&d, path);
    if (st == MS_OK && d.len > 0)
        st = ms_fail(MS_ERR_INVALID, "%s differs from the recipe's model section: %s; set the model section to "
                     "the checkpoint's shape (or import a checkpoint of this shape)", path, d.s + 2);
    ms_text_free(&d);
    return st;
}

/* ---- the Hugging Face directory source ---------------------------------------- */

typedef struct hf_tensor {
    int file;                  /* index into files */
    const ms_st_tensor *st;
} hf_tensor;

typedef struct hf_source {
    ms_source base;
    int n_files;
    ms_st_file *files;         /* (n_files) open shards */
    hf_tensor *tensors;        /* (m->n_tensors) where each of our tensors is */
} hf_source;

static void hf_close(ms_source *s) {
    hf_source *h = (hf_source *)s;
    for (int i = 0; i < h->n_files; i++) ms_st_close(&h->files[i]);
    free(h->files);
    free(h->tensors);
    free(h);
}

static ms_status hf_read(ms_source *s, int unit, int64_t lo, int64_t hi, float *out) {
    hf_source *h = (hf_source *)s;
    const ms_model *m = s->m;
    const ms_unit *u = &m->units[unit];
    memset(out, 0, (size_t)(hi - lo) * 4);
    for (int t = u->first; t < u->first + u->count; t++) {
        const ms_tensor *tt = &m->tensors[t];
        int64_t from = tt->offset > lo ? tt->offset : lo;
        int64_t to = tt->offset + tt->numel < hi ? tt->offset + tt->numel : hi;
        if (from >= to) continue;
        const hf_tensor *ht = &h->tensors[t];
        TRY(ms_st_read(&h->files[ht->file], ht->st, from - tt->offset, to - from, out + (from - lo)));
    }
    return MS_OK;
}

static int safe_file_name(const char *s) {
    if (!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    return 1;
}

/* The shard files of the directory: from the index, or the single model.safetensors. */
static ms_status open_files(hf_source *h, const char *dir, ms_json **index_out) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    struct stat sb;
    *index_out = NULL;
    if (stat(path, &sb) != 0) {
        h->files = calloc(1, sizeof *h->files);
        if (!h->files) return ms_fail(MS_ERR_NOMEM, "out of host memory");
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        TRY(ms_st_open(&h->files[0], path));
        h->n_files = 1;
        return MS_OK;
    }
    ms_json *index;
    TRY(read_json(path, &index));
    *index_out = index;
    const ms_json *map = ms_json_get(index, "weight_map");
    if (!map || map->kind != MS_JSON_OBJECT)
        return ms_fail(MS_ERR_FORMAT, "%s: weight_map is %s; expected an object of tensor name -> file name", path,
                       map ? ms_json_kind_name(map->kind) : "missing");
    h->files = calloc((size_t)map->n + 1, sizeof *h->files);
    if (!h->files) return ms_fail(MS_ERR_NOMEM, "out of host memory");
    for (int i = 0; i < map->n; i++) {
        const ms_json *f = &map->items[i];
        if (f->kind != MS_JSON_STRING || !safe_file_name(f->string))
            return ms_fail(MS_ERR_FORMAT, "%s: weight_map[\"%s\"] is %s; expected the name of a file in %s", path,
                           map->keys[i], f->kind == MS_JSON_STRING ? "a path outside the directory"
                                                                   : ms_json_kind_name(f->kind), dir);
        int seen = 0;
        for (int k = 0; k < i && !seen; k++) seen = strcmp(map->items[k].string, f->string) == 0;
        if (seen) continue;
        char shard[4200];
        snprintf(shard, sizeof shard, "%s/%s", dir, f->string);
        TRY(ms_st_open(&h->files[h->n_files], shard));
        h->n_files++;
    }
    return MS_OK;
}

/* Which file of the directory holds name: the index's word, or the one file. */
static int file_of(const hf_source *h, const ms_json *index, const char *dir, const char *name) {
    if (!index) return 0;
    const ms_json *f = ms_json_get(ms_json_get(index, "weight_map"), name);
    if (!f) return -1;
    char shard[4200];
    snprintf(shard, sizeof shard, "%s/%s", dir, f->string);
    for (int i = 0; i < h->n_files; i++)
        if (strcmp(h->files[i].path, shard) == 0) return i;
    return -1;
}

/* Every tensor the model needs is there, readable, of its shape; nothing else is. */
static ms_status map_tensors(hf_source *h, const ms_json *index, const char *dir) {
    const ms_model *m = h->base.m;
    char name[128];
    const char *where = index ? "model.safetensors.index.json" : "model.safetensors";
    for (int t = 0; t < m->n_tensors; t++) {
        const ms_tensor *tt = &m->tensors[t];
        ms_hf_name(m, t, name, sizeof name);
        int f = file_of(h, index, dir, name);
        const ms_st_tensor *st = f >= 0 ? ms_st_find(&h->files[f], name) : NULL;
        if (!st && f >= 0 && index)
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s is missing, though the index places it in "
                           "this file", h->files[f].path, name);
        if (!st)
            return ms_fail(MS_ERR_FORMAT, "Hugging Face directory %s: tensor %s (our %s) is missing from %s", dir,
                           name, tt->name, where);
        if (st->dtype != MS_ST_F32 && st->dtype != MS_ST_BF16 && st->dtype != MS_ST_F16)
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s has dtype %s; moonspeed reads weights of "
                           "dtype F32, BF16 or F16", h->files[f].path, name, ms_st_dtype_name(st->dtype));
        int same = st->ndim == tt->ndim;
        for (int d = 0; same && d < tt->ndim; d++) same = st->shape[d] == tt->shape[d];
        if (!same) {
            char got[96] = "(", want[96] = "(";
            for (int d = 0; d < st->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)st->shape[d]);
            for (int d = 0; d < tt->ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "",
                         (long long)tt->shape[d]);
            return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s has shape %s), but the recipe's model needs "
                           "%s) for %s", h->files[f].path, name, got, want, tt->name);
        }
        h->tensors[t] = (hf_tensor){.file = f, .st = st};
    }
    /* tensors we would silently drop mean a different model */
    for (int f = 0; f < h->n_files; f++)
        for (int i = 0; i < h->files[f].n; i++) {
            const char *n = h->files[f].tensors[i].name;
            int used = 0;
            for (int t = 0; t < m->n_tensors && !used; t++) used = h->tensors[t].st == &h->files[f].tensors[i];
            size_t len = strlen(n), suffix = strlen("rotary_emb.inv_freq");
            int ignorable = (m->c.tie_embeddings && strcmp(n, "lm_head.weight") == 0) ||
                            (len >= suffix && strcmp(n + len - suffix, "rotary_emb.inv_freq") == 0);
            if (!used && !ignorable)
                return ms_fail(MS_ERR_FORMAT, "safetensors %s: tensor %s is not part of a Llama model of the "
                               "recipe's shape; moonspeed would ignore it, so it refuses the file",
                               h->files[f].path, n);
        }
    return MS_OK;
}

ms_status ms_source_open_hf(const ms_model *m, const char *dir, ms_source **out) {
    *out = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ms_fail(MS_ERR_INVALID, "Hugging Face directory %s has no config.json; it is needed to check the "
                       "model's shape against the recipe", dir);
    TRY(ms_hf_config_check(path, &m->c));
    hf_source *h = calloc(1, sizeof *h);
    if (!h) return ms_fail(MS_ERR_NOMEM, "out of host memory");
    h->base = (ms_source){.kind = "Hugging Face directory", .m = m, .read = hf_read, .close = hf_close};
    snprintf(h->base.path, sizeof h->base.path, "%s", dir);
    h->tensors = calloc((size_t)m->n_tensors, sizeof *h->tensors);
    ms_json *index = NULL;
    ms_status st = h->tensors ? open_files(h, dir, &index) : ms_fail(MS_ERR_NOMEM, "out of host memory");
    if (st == MS_OK) st = map_tensors(h, index, dir);
    ms_json_free(index);
    if (st != MS_OK) {
        hf_close(&h->base);
        return st;
    }
    *out = &h->base;
    return MS_OK;
}
