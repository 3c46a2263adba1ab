/*
 * moonspeed.h — the one public C API of the moonspeed training engine.
 *
 * Written in the subset of C that LuaJIT's FFI parses: the Lua declarations
 * (build/lua/moonspeed/cdef.lua) are generated from this file at build time by
 * dropping the preprocessor lines, so everything between the guards must be
 * plain declarations — opaque handles, fixed-width integers, enums with explicit
 * values, no macros, no bitfields.
 *
 * Conventions
 *   - Every fallible call returns ms_status; on failure the sentence saying what
 *     went wrong, where, and what would be right is in ms_last_error()
 *     (thread-local, valid until the next failing call on that thread).
 *   - Handles are created by *_create and released by *_free (NULL is a no-op).
 *   - Sizes are bytes, counts are elements, steps count from 0.
 */
#ifndef MOONSPEED_H
#define MOONSPEED_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef enum ms_status {
    MS_OK = 0,
    MS_ERR_INVALID = 1,   /* a bad argument or configuration */
    MS_ERR_IO = 2,        /* a file could not be opened, read or written */
    MS_ERR_FORMAT = 3,    /* a file exists but its contents are wrong */
    MS_ERR_NOMEM = 4,     /* a reservation failed */
    MS_ERR_STATE = 5,     /* the call does not fit the object's state */
    MS_ERR_INTERNAL = 6,  /* a broken invariant: a bug in moonspeed */
    MS_ERR_NUMERIC = 7    /* the loss or the gradients became NaN or Inf */
} ms_status;

typedef enum ms_dtype {
    MS_F32 = 0,
    MS_BF16 = 1,
    MS_I32 = 2,
    MS_U32 = 3
} ms_dtype;

typedef enum ms_precision {
    MS_PRECISION_FP32 = 0,   /* everything fp32 */
    MS_PRECISION_BF16 = 1    /* bf16 params/activations for compute, fp32 master + optimizer */
} ms_precision;

typedef enum ms_device_kind {
    MS_DEVICE_CPU = 0,
    MS_DEVICE_CUDA = 1
} ms_device_kind;

typedef enum ms_schedule {
    MS_SCHEDULE_CONSTANT = 0,
    MS_SCHEDULE_LINEAR = 1,   /* linear decay from lr to min_lr after warmup */
    MS_SCHEDULE_COSINE = 2    /* cosine decay from lr to min_lr after warmup */
} ms_schedule;

/* The Llama family: everything a model shape needs. */
typedef struct ms_model_config {
    int32_t vocab_size;
    int32_t dim;             /* model width d */
    int32_t n_layers;
    int32_t n_heads;         /* query heads; head_dim = dim / n_heads */
    int32_t n_kv_heads;      /* key/value heads (GQA); divides n_heads */
    int32_t ffn_dim;         /* SwiGLU hidden width */
    int32_t max_seq_len;
    int32_t tie_embeddings;  /* 1: the LM head reuses the embedding matrix */
    float rope_theta;
    float norm_eps;
    float init_std;          /* std of the normal init of weight matrices */
} ms_model_config;

typedef struct ms_train_config {
    int32_t steps;           /* optimizer steps the schedule spans */
    int32_t batch;           /* sequences per optimizer step */
    int32_t micro_batch;     /* sequences per forward/backward; divides batch */
    int32_t seq_len;         /* tokens per sequence; <= model.max_seq_len */
    int32_t warmup;          /* linear warmup steps */
    int32_t schedule;        /* ms_schedule */
    float lr;                /* peak learning rate */
    float min_lr;            /* floor of the decay */
    float beta1;
    float beta2;
    float eps;
    float weight_decay;      /* decoupled; not applied to norms and embeddings */
    float clip;              /* global-norm clip threshold; 0 = off */
    int32_t checkpoint_activations; /* 0: keep what backward needs; 1: keep block inputs, recompute blocks
                                       in backward; 2: selective: recompute only the norms and SwiGLU */
    int32_t eval_batches;    /* micro-batches per evaluation */
    uint64_t seed;           /* init and data order */
    int32_t skip_nonfinite;  /* a step whose loss or gradients are NaN/Inf: 1 skipped (no update), 0 an error */
} ms_train_config;

typedef struct ms_config {
    ms_model_config model;
    ms_train_config train;
    int32_t precision;       /* ms_precision */
    int32_t device;          /* ms_device_kind */
    int32_t threads;         /* worker threads; 0 = all cores */
    int32_t loss_chunk;      /* rows of logits per LM-head chunk; 0 = automatic */
    const char *train_path;  /* token shard for training (NULL: none) */
    const char *val_path;    /* token shard for evaluation (NULL: none) */
    const char *tokenizer;   /* tokenizer id the shards must carry (NULL: any), e.g. "bytes" */
    int32_t zero_stage;      /* 0 replicate, 1 shard optimizer state, 2 + gradients, 3 + parameters */
    int32_t zero_prefetch;   /* stage 3: units gathered ahead of the one computing (0..2) */
    int32_t offload_optimizer; /* 1: master weights and Adam moments of offloaded units in host memory,
                                  updated there by the CPU; 0: all on the device */
    float offload_ratio;     /* the share of the parameters whose optimizer state is offloaded (0..1),
                                in whole units, the last units first */
    int32_t offload_params;  /* 1 (zero_stage 3, offload_optimizer): the compute parameters of the
                                offloaded sharded units in host memory, streamed up before each gather */
    int32_t offload_overlap; /* 1: the host updates each unit as its gradient arrives, during the
                                backward, into a second copy of its state (kept if the step is
                                neither clipped nor skipped, else recomputed or dropped); 0 (the
                                default): after the backward, overlapping the next forward */
    int32_t world_size;      /* ranks; 0 = from the environment (MS_*, PET_*, torchrun), 1 when unset */
    int32_t comm_timeout_ms; /* deadline of every collective; 0 = 300000 */
    const char *comm_provider; /* libfabric provider (NULL: FI_PROVIDER, else chosen by topology) */
    int32_t doc_mask;        /* 1: attention does not cross documents packed into a sequence */
    int32_t bos_token;       /* the token that starts a document (under doc_mask) */
    const char *init_from;   /* initial weights instead of meta init (NULL: none): a Hugging Face
                                Llama directory, a weights file or a run directory holding model.bin;
                                each rank reads only the elements it owns */
    int32_t checkpoint_async; /* 1: checkpoints may be saved asynchronously, from a host snapshot of
                                 this rank's state that the plan reserves */
} ms_config;

/* Bytes by purpose. The plan predicts them; the engine reserves exactly them. */
typedef struct ms_memory {
    int64_t params;          /* compute copy of the parameters */
    int64_t grads;           /* parameter gradients */
    int64_t master;          /* fp32 master weights (bf16 precision only) */
    int64_t optimizer;       /* AdamW moments */
    int64_t activations;     /* what forward keeps for backward */
    int64_t workspace;       /* scratch for one op or one block at a time */
    int64_t data;            /* token batches */
    int64_t backend;         /* the device backend's own scratch: a GPU's cuBLASLt workspace and the
                                temporaries of its kernels (0 on the CPU) */
    int64_t checkpoint;      /* the host snapshot asynchronous checkpoints are written from */
    int64_t total;
} ms_memory;

typedef struct ms_plan {
    int32_t device;          /* ms_device_kind the plan is for */
    int32_t world_size;      /* ranks the bytes are per-rank for */
    int32_t zero_stage;
    int32_t n_units;
    int64_t n_params;        /* unpadded parameter count */
    int64_t n_params_matmul; /* parameters in matmuls (LM head in, embedding lookup out) */
    double flops_per_token;  /* training FLOPs/token, 6N + 6LTd (causal attention once) */
    double flops_per_token_full; /* 6N + 12LTd (full attention) */
    ms_memory device_bytes;  /* on the compute device */
    ms_memory host_bytes;    /* on the host beside it: staging, and the state of offloaded units */
    int32_t offload_units;   /* units whose optimizer state is offloaded */
    int64_t offload_params;  /* their parameters (unpadded) */
} ms_plan;

typedef struct ms_step_stats {
    int64_t step;            /* the step just taken (0-based) */
    float loss;              /* mean cross-entropy over the step's tokens, nats */
    float lr;
    float grad_norm;         /* global norm before clipping */
    int64_t tokens;
    double seconds;          /* wall time of the step */
    double flops;            /* model FLOPs of the step, all ranks (6N + 6LTd convention) */
    /* collectives of this step on this rank, by kind: all-gather, reduce-scatter,
       all-reduce, broadcast, barrier */
    int64_t comm_calls[5];
    int64_t comm_bytes[5];
    double comm_seconds[5];
    /* optimizer offload (zeros when nothing is offloaded): seconds of the
       host's AdamW that ended during this step, seconds this step waited for
       updates not yet done, and 1 when the update taken during the backward
       (offload.overlap) was redone with the clip factor */
    double offload_update_seconds;
    double offload_wait_seconds;
    int32_t offload_recomputed;
    int32_t skipped;         /* 1: the loss or gradients were not finite; nothing was updated */
    char nonfinite[92];      /* then: where they first appear ("the gradients of unit block.1") */
} ms_step_stats;

typedef struct ms_memory_report {
    ms_memory reserved;      /* reserved at create: equals the plan */
    ms_memory used;          /* carved out of the reservations */
    int64_t reservations;    /* arena reservations made since create */
} ms_memory_report;

typedef struct ms_unit_info {
    const char *name;        /* "embed", "block.0", ..., "head" */
    int32_t n_tensors;
    int32_t reserved;
    int64_t numel;           /* parameters of this unit */
    int64_t padded_numel;    /* length of its flat buffer */
} ms_unit_info;

typedef struct ms_tensor_info {
    const char *name;        /* "block.3.attn.wq" */
    int32_t unit;
    int32_t dtype;           /* ms_dtype of the compute copy */
    int32_t ndim;
    int32_t decay;           /* 1 when weight decay applies */
    int64_t shape[4];
    int64_t numel;
    int64_t offset;          /* elements from the start of the unit's flat buffer */
} ms_tensor_info;

typedef enum ms_view {
    MS_VIEW_PARAM = 0,       /* compute copy (bf16-rounded under bf16) */
    MS_VIEW_GRAD = 1,        /* gradient of the last step's last micro-batch accumulation */
    MS_VIEW_MASTER = 2       /* fp32 master (the compute copy under fp32) */
} ms_view;

typedef struct ms_shard_info {
    int32_t version;
    int32_t vocab_size;
    int64_t n_tokens;
    char tokenizer[33];      /* tokenizer id, NUL-terminated */
} ms_shard_info;

/* What this machine offers for a device kind (ms_device_query): how many,
 * and the one this process takes (cuda: GPU local rank % count, the local
 * rank from the launch environment, 0 without one). */
typedef struct ms_device_info {
    int32_t kind;            /* ms_device_kind asked about */
    int32_t count;           /* devices of that kind here */
    int32_t index;           /* this process's device */
    int64_t free_bytes;      /* its free memory (cuda; 0 for cpu) */
    int64_t total_bytes;     /* its memory (cuda; 0 for cpu) */
    char name[64];           /* its name */
} ms_device_info;

typedef struct ms_engine ms_engine;

/* --- errors and version ------------------------------------------------- */
const char *ms_last_error(void);
const char *ms_version(void);
const char *ms_status_name(ms_status status);

/* --- planning: pure arithmetic, allocates nothing ------------------------- */
ms_status ms_config_defaults(ms_config *cfg);
ms_status ms_config_check(const ms_config *cfg);
ms_status ms_plan_compute(const ms_config *cfg, ms_plan *out);
/* Fails with a sentence saying why when this machine cannot run the kind
 * (no GPU, no driver, or a build without the CUDA backend). */
ms_status ms_device_query(int32_t kind, ms_device_info *out);

/* --- the engine ---------------------------------------------------------
 * With world_size > 1 every rank runs the same calls in the same order:
 * create, step, eval, generate and save_weights are collective. */
ms_status ms_engine_create(const ms_config *cfg, ms_engine **out);
void ms_engine_free(ms_engine *e);
ms_status ms_engine_step(ms_engine *e, ms_step_stats *out);
ms_status ms_engine_eval(ms_engine *e, float *out_loss);
int64_t ms_engine_get_step(const ms_engine *e);
int32_t ms_engine_rank(const ms_engine *e);
int32_t ms_engine_world_size(const ms_engine *e);
int32_t ms_engine_threads(const ms_engine *e);   /* worker threads this rank computes with */
ms_status ms_engine_set_step(ms_engine *e, int64_t step);
ms_status ms_engine_memory(const ms_engine *e, ms_memory_report *out);
/* Sets the peak learning rate from the next step on: the schedule (warmup,
 * decay) scales from it, and min_lr keeps its ratio to it. 0 < lr < 10. Every
 * rank must make the same call between the same two steps. */
ms_status ms_engine_set_lr(ms_engine *e, float lr);
/* Copies bytes of rank 0's buf into every rank's buf; collective, between steps. */
ms_status ms_engine_broadcast(ms_engine *e, void *buf, int64_t bytes);
ms_status ms_engine_plan(const ms_engine *e, ms_plan *out);

/* --- profile: where the device's time goes ----------------------------- */
/* One op's share of a window: the ops of one name (a kernel's; a matmul's
 * with its shape) summed over it. */
typedef struct ms_op_time {
    char name[48];
    int64_t calls;
    double seconds;
} ms_op_time;
/* From now on the device times every op it runs on its own clock (a GPU's
 * events; the host's clock on the CPU), until ms_engine_profile_stop; one
 * window at a time. */
ms_status ms_engine_profile_start(ms_engine *e);
/* Ends the window: the ops' sums by name, the largest first, at most max of
 * them into out (*count of them), and the window's length in seconds (what
 * the ops leave of it is the device idle: waiting for the host, a copy or a
 * collective). */
ms_status ms_engine_profile_stop(ms_engine *e, ms_op_time *out, int32_t max, int32_t *count, double *window_seconds);

/* --- introspection ------------------------------------------------------ */
int32_t ms_engine_unit_count(const ms_engine *e);
ms_status ms_engine_unit(const ms_engine *e, int32_t unit, ms_unit_info *out);
ms_status ms_engine_tensor(const ms_engine *e, int32_t unit, int32_t index, ms_tensor_info *out);
ms_status ms_engine_tensor_read(const ms_engine *e, int32_t unit, int32_t index, int32_t view,
                                int64_t offset, float *dst, int64_t n);
/* Writes this rank's master weights (and its compute copy) of the elements it
 * owns; with several ranks each writes its own range. */
ms_status ms_engine_tensor_write(ms_engine *e, int32_t unit, int32_t index,
                                 int64_t offset, const float *src, int64_t n);

/* --- weights: the fp32 master parameters of every unit in one file ------ */
ms_status ms_engine_save_weights(ms_engine *e, const char *path);  /* atomic; collective, rank 0 writes */
ms_status ms_engine_load_weights(ms_engine *e, const char *path);        /* shapes must match */

/* --- checkpoints: every rank's training state in its own file ------------
 * A checkpoint directory holds one state file per rank ("rank-00000-of-00002.state":
 * the fp32 master weights and Adam moments of the elements the rank owns, and
 * the step). ms_engine_state_save starts writing this rank's file into dir (an
 * existing directory) — here, or with async (an engine created with
 * checkpoint_async) from its host snapshot on a background thread; ms_engine_state_wait then gathers every rank's outcome
 * into files (world entries). With block = 0 it only checks: *done = 0 while
 * any rank is still writing. Both are collective. ms_engine_state_load reads a
 * checkpoint of any world size and ZeRO stage (files: the records the save
 * returned, one per rank that saved): each rank checks the size and CRC-32C of
 * every file it reads, and a damaged checkpoint is refused as a whole with the
 * engine unchanged (MS_ERR_FORMAT naming the file and the mismatch). */
typedef struct ms_state_file {
    char name[64];            /* the file's name within the directory */
    char error[448];          /* why the write failed, when status != MS_OK */
    uint64_t bytes;
    uint32_t crc32c;
    int32_t status;
} ms_state_file;

ms_status ms_engine_state_save(ms_engine *e, const char *dir, int32_t async);
ms_status ms_engine_state_wait(ms_engine *e, int32_t block, int32_t *done, ms_state_file *files);
ms_status ms_engine_state_load(ms_engine *e, const char *dir, const ms_state_file *files, int32_t n_files);

/* --- files: checksums and directories, for checkpoint bookkeeping --------- */
ms_status ms_crc32c_file(const char *path, uint32_t *crc, uint64_t *bytes);  /* CRC-32C of a whole file */
ms_status ms_fsync_dir(const char *path);     /* make renames inside path durable */
ms_status ms_remove_tree(const char *path);   /* a directory and everything below it; absent is fine */
ms_status ms_write_file(const char *path, const void *data, int64_t bytes);  /* atomic and durable */

/* --- signals: a graceful stop -------------------------------------------
 * After ms_signals_watch the first SIGTERM or SIGINT only sets a flag that
 * ms_signal_pending returns (the signal's number; 0 while none came): a
 * training loop finishes its step, saves a checkpoint and exits. A second
 * signal ends the process as usual (and SIGXFSZ, a file-size limit, becomes
 * a write error instead of a kill). ms_engine_agree_max is collective: *max
 * gets the largest value any rank passed, so that every rank stops after the
 * same step whichever of them saw the signal first. */
ms_status ms_signals_watch(void);
int32_t ms_signal_pending(void);
ms_status ms_engine_agree_max(ms_engine *e, int32_t value, int32_t *max);

/* --- Hugging Face interop ------------------------------------------------
 * Export writes a consolidated Hugging Face Llama model (LlamaForCausalLM) to
 * a new directory dir: model-0000x-of-0000y.safetensors, their
 * model.safetensors.index.json, config.json and generation_config.json. The
 * weights come from source (a weights file, or a run directory holding
 * model.bin) for the model shape cfg->model, one unit in memory at a time.
 * Everything is written into a temporary directory beside dir, synced, then
 * renamed to dir: a failure leaves no dir and no temporary behind. dir must
 * not exist, or be an empty directory. Import is ms_config.init_from. */
typedef struct ms_hf_export_options {
    int32_t dtype;            /* MS_F32 or MS_BF16 (rounded to nearest even) */
    int32_t bos_token;        /* config.json's bos_token_id; -1 = null */
    int32_t eos_token;        /* eos_token_id; -1 = null */
    int32_t reserved;
    int64_t max_shard_bytes;  /* a new shard starts before one would grow past this; 0 = 5e9 */
} ms_hf_export_options;

typedef struct ms_hf_export_report {
    int32_t shards;
    int32_t tensors;
    int64_t bytes;            /* of tensor data, all shards */
} ms_hf_export_report;

ms_status ms_hf_export(const ms_config *cfg, const char *source, const char *dir,
                       const ms_hf_export_options *opt, ms_hf_export_report *out);

/* fp32 logits (n, vocab_size) of every position of one sequence of n tokens,
 * 1 <= n <= train.seq_len (a debugging and comparison aid). Collective. */
ms_status ms_engine_logits(ms_engine *e, const int32_t *tokens, int32_t n, float *out);

/* --- text generation: sampling from the model's next-token distribution -- */
ms_status ms_engine_generate(ms_engine *e, const int32_t *prompt, int32_t n_prompt,
                             int32_t max_new, float temperature, int32_t top_k,
                             uint64_t seed, int32_t stop_token,
                             int32_t *out, int32_t *n_out);

/* --- data: token shard files and the byte-level tokenizer --------------- */
int32_t ms_bytes_vocab_size(void);      /* 258: bytes 0..255, BOS 256, EOS 257 */
int32_t ms_bytes_bos(void);
int32_t ms_bytes_eos(void);
ms_status ms_shard_info_read(const char *path, ms_shard_info *out);
ms_status ms_shard_write(const char *path, const uint32_t *tokens, int64_t n_tokens,
                         int32_t vocab_size, const char *tokenizer);
ms_status ms_bytes_prepare(const char *text_path, const char *train_path, const char *val_path,
                           int32_t val_every, ms_shard_info *train_info, ms_shard_info *val_info);

/* --- tokenizers: Llama 3's byte-level BPE, and "bytes" -------------------
 * ms_tokenizer_load reads Meta's tokenizer.model (tiktoken: base64 token, space,
 * rank per line) or Hugging Face's tokenizer.json, or gives the byte-level
 * tokenizer for the path "bytes". A tokenizer is immutable: any number of
 * threads may encode and decode with it at once.
 *
 * Encoding: the Llama 3 pre-split pattern, then BPE merges by rank (tiktoken).
 * Invalid UTF-8 is encoded byte by byte, so decode(encode(x)) == x for any
 * bytes x. Special-token names ("<|eot_id|>") in the text are plain text unless
 * MS_ENCODE_SPECIALS is given. The output buffer is the caller's: *n_tokens is
 * set to the count the text needs and at most cap ids are written, so a call
 * with cap >= n_bytes (+1 for BOS, +1 for EOS) always fits; otherwise call
 * again with cap = *n_tokens. ms_tokenizer_decode works the same way in bytes.
 *
 * The id (at most 32 bytes, what token shards carry) is derived from the SHA-256
 * of the vocabulary in tiktoken form, so it is the same from either file form:
 * "llama3-82e9d31979e92ab929cd5444" for Llama 3, "bpe-<hash>" for another
 * vocabulary, "bytes" for the byte-level tokenizer. */
typedef struct ms_tokenizer ms_tokenizer;

typedef enum ms_encode_flags {
    MS_ENCODE_BOS = 1,        /* prepend the BOS token */
    MS_ENCODE_EOS = 2,        /* append the EOS token */
    MS_ENCODE_SPECIALS = 4    /* recognise special-token names in the text */
} ms_encode_flags;

ms_status ms_tokenizer_load(const char *path, ms_tokenizer **out);
void ms_tokenizer_free(ms_tokenizer *t);
const char *ms_tokenizer_id(const ms_tokenizer *t);
int32_t ms_tokenizer_vocab_size(const ms_tokenizer *t);   /* 128256 for Llama 3, 258 for bytes */
int32_t ms_tokenizer_bos(const ms_tokenizer *t);
int32_t ms_tokenizer_eos(const ms_tokenizer *t);
int32_t ms_tokenizer_special(const ms_tokenizer *t, const char *name);  /* id, or -1 */
ms_status ms_tokenizer_token(const ms_tokenizer *t, int32_t id, const char **bytes, int32_t *n_bytes);
ms_status ms_tokenizer_encode(const ms_tokenizer *t, const char *text, int64_t n_bytes, int32_t flags,
                              int32_t *out, int64_t cap, int64_t *n_tokens);
ms_status ms_tokenizer_decode(const ms_tokenizer *t, const int32_t *ids, int64_t n_ids,
                              char *out, int64_t cap, int64_t *n_bytes);

/* Corpus preparation: plain-text files (one document each), JSONL files (one
 * document per line, its "text" field; .jsonl or .json), and directories
 * (recursively, in name order). Each document becomes BOS ... EOS. Text is cut
 * into blocks of about 16 KiB at line ends; every block is wholly train or
 * validation (block k is held out when floor((k+1)f) > floor(kf)), so the split
 * is exact, spread over the corpus and independent of the thread count. Writes
 * out_dir/train-00000.bin ... and out_dir/val-00000.bin ..., each written
 * atomically and stamped with the tokenizer's id and vocabulary size. */
typedef struct ms_tokenize_options {
    double val_fraction;      /* share of blocks held out, 0 <= f < 1 */
    int64_t shard_tokens;     /* tokens per shard file at most; 0 = 67108864 */
    int32_t threads;          /* 0 = all cores */
    int32_t progress;         /* 1: a progress bar with MB/s on stderr */
} ms_tokenize_options;

typedef struct ms_tokenize_report {
    int64_t files;
    int64_t documents;
    int64_t bytes;            /* of text read (JSONL: of the decoded text fields) */
    int64_t train_tokens;
    int64_t val_tokens;
    int32_t train_shards;
    int32_t val_shards;
    double seconds;
} ms_tokenize_report;

ms_status ms_tokenize_files(const ms_tokenizer *t, const char *const *inputs, int32_t n_inputs,
                            const char *out_dir, const ms_tokenize_options *opt, ms_tokenize_report *out);

/* --- ranks: launching a job's local ranks, measuring the collectives -----
 * ms_launch runs n copies of argv (argv[0] is what they see as their name;
 * path is the program, NULL for this executable) as ranks first_rank ..
 * first_rank + n - 1: each gets env ("NAME=value" entries, NULL-terminated,
 * over this process's environment) plus MS_RANK and MS_LOCAL_RANK. It copies
 * their output line by line, forwards SIGINT/SIGTERM/SIGHUP, and when a rank
 * exits non-zero or dies of a signal stops the others (SIGTERM, then SIGKILL
 * after grace_ms; 0 = 5000) and reports that rank. It returns when every rank
 * has ended; nothing it started outlives it. MS_OK unless the ranks could not
 * be started; how they ended is in *out. */
typedef enum ms_launch_flags {
    MS_LAUNCH_PREFIX = 1,            /* prefix every line with "[rank K] " */
    MS_LAUNCH_FIRST_STDOUT_ONLY = 2  /* keep only the first rank's standard output, unprefixed
                                        (standard error stays, prefixed) */
} ms_launch_flags;

typedef struct ms_launch_result {
    int32_t started;          /* ranks started */
    int32_t failed_rank;      /* the first rank that failed, -1 when none did */
    int32_t exit_status;      /* its exit status; -1 when a signal ended it */
    int32_t signal;           /* the signal that ended it, 0 when it exited */
    int32_t interrupted;      /* a signal this process got and forwarded, 0 when none */
    int32_t stopped;          /* ranks still running that were stopped because of the failure */
    char what[96];            /* "exited with status 1", "was killed by signal 9 (SIGKILL)" */
} ms_launch_result;

ms_status ms_launch(const char *path, const char *const *argv, const char *const *env, int32_t n,
                    int32_t first_rank, int32_t flags, int32_t grace_ms, ms_launch_result *out);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
ms_status ms_free_port(int32_t *port);

/* One line of `moonspeed bench comm`: a collective at one size, timed on every
 * rank (the slowest counts), with nccl-tests' bandwidths: algbw = bytes / time,
 * busbw = algbw x 2(n-1)/n (all-reduce), (n-1)/n (all-gather, reduce-scatter),
 * 1 (broadcast). */
typedef struct ms_comm_bench_row {
    int32_t kind;             /* 0 all-gather, 1 reduce-scatter, 2 all-reduce, 3 broadcast */
    int32_t iters;
    int64_t bytes;            /* the collective's size: all ranks' data for gathers and scatters */
    double seconds;           /* per call */
    double algbw;             /* GB/s (1e9 bytes) */
    double busbw;             /* GB/s */
} ms_comm_bench_row;

typedef struct ms_comm_bench_info {
    int32_t rank;
    int32_t world;
    char provider[64];
} ms_comm_bench_info;

/* The busbw / algbw factor above for a collective kind in a world of n ranks
 * (kinds as in ms_step_stats.comm_*: 0 all-gather ... 4 barrier, which moves nothing). */
double ms_comm_bus_factor(int32_t kind, int32_t n);

/* Joins the world of the environment (MS_*, PET_*, torchrun) over provider
 * (NULL: the default choice) and times every collective of fp32 data at sizes
 * min_bytes, 4 x min_bytes, ... up to max_bytes. Collective: every rank calls it. */
ms_status ms_comm_bench(const char *provider, int64_t min_bytes, int64_t max_bytes, int32_t timeout_ms,
                        ms_comm_bench_info *info, ms_comm_bench_row *rows, int32_t cap, int32_t *n_rows);

#ifdef __cplusplus
}
#endif
#endif
