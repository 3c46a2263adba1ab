/*
 * ckpt/safetensors.h — reading and writing the safetensors format.
 *
 * A file is: uint64 little-endian N, then N bytes of JSON (the header, padded
 * with spaces), then the data section. The header maps each tensor name to
 *   {"dtype": "BF16", "shape": [4096, 4096], "data_offsets": [begin, end]}
 * with offsets in bytes from the start of the data section; an optional
 * "__metadata__" object maps strings to strings. Tensors are row-major and
 * little-endian, their regions contiguous and in the order of their offsets,
 * covering the data section exactly (the rules of the reference reader).
 *
 * These files come from strangers, so opening one checks everything before a
 * single value is read: the length, the JSON, every dtype, shape and offset,
 * and that the regions tile the data section. Every refusal names the file,
 * the tensor and the problem. Values are read by element range, so a rank
 * reads only the slice it owns, converted to fp32 from F32, BF16 or F16.
 *
 * The writer plans the whole header from the tensor names, shapes and dtype up
 * front, then takes the values in that order as fp32 (rounded to bf16 to
 * nearest even when writing BF16), streaming them into a file written
 * atomically (core/file.h).
 */
#ifndef MS_CKPT_SAFETENSORS_H
#define MS_CKPT_SAFETENSORS_H
#include <stdint.h>

#include "core/file.h"
#include "include/moonspeed.h"

/* The dtypes a header may name; only F32, BF16 and F16 can be read as values. */
typedef enum ms_st_dtype {
    MS_ST_F32, MS_ST_BF16, MS_ST_F16, MS_ST_F64, MS_ST_I64, MS_ST_I32, MS_ST_I16, MS_ST_I8, MS_ST_U64,
    MS_ST_U32, MS_ST_U16, MS_ST_U8, MS_ST_BOOL, MS_ST_F8_E4M3, MS_ST_F8_E5M2, MS_ST_DTYPES
} ms_st_dtype;

#define MS_ST_MAX_DIMS 8
#define MS_ST_MAX_HEADER 100000000 /* bytes, the reference reader's limit */

const char *ms_st_dtype_name(int dtype);
int ms_st_dtype_size(int dtype);

typedef struct ms_st_tensor {
    char *name;
    int32_t dtype;                   /* ms_st_dtype */
    int32_t ndim;
    int64_t shape[MS_ST_MAX_DIMS];
    int64_t numel;
    int64_t begin, end;              /* bytes from the start of the data section */
} ms_st_tensor;

typedef struct ms_st_file {
    char path[4096];
    int fd;
    int64_t data_start;              /* 8 + header length */
    int64_t data_bytes;
    int32_t n;
    ms_st_tensor *tensors;           /* (n) sorted by name */
} ms_st_file;

/* Opens and checks a file (see above); on failure nothing stays open. */
ms_status ms_st_open(ms_st_file *f, const char *path);
void ms_st_close(ms_st_file *f);
/* The tensor called name, or NULL. */
const ms_st_tensor *ms_st_find(const ms_st_file *f, const char *name);
/* Elements [first, first + n) of tensor t (row-major) as fp32. */
ms_status ms_st_read(const ms_st_file *f, const ms_st_tensor *t, int64_t first, int64_t n, float *out);

/* ---- writing -------------------------------------------------------------- */

typedef struct ms_st_spec {
    const char *name;
    int32_t ndim;
    int64_t shape[MS_ST_MAX_DIMS];
} ms_st_spec;

typedef struct ms_st_writer {
    ms_file_out out;
    int32_t dtype;                   /* MS_ST_F32 or MS_ST_BF16, for every tensor */
    int64_t expected, written;       /* data bytes */
    uint16_t buf[4096];              /* bf16 staging */
} ms_st_writer;

/* Plans the header of n tensors (in this order) with the given metadata pairs
 * (keys[i], values[i]; may be 0), and starts the file. */
ms_status ms_st_begin(ms_st_writer *w, const char *path, int32_t dtype, const ms_st_spec *specs, int n,
                      const char *const *meta_keys, const char *const *meta_values, int n_meta);
/* The next n values, in the planned order. */
ms_status ms_st_write(ms_st_writer *w, const float *x, int64_t n);
/* Checks that every planned byte came, then renames the file into place. */
ms_status ms_st_commit(ms_st_writer *w);
void ms_st_abort(ms_st_writer *w);

#endif
