/*
 * spec/fuzz/fuzz.h — what the libFuzzer targets share.
 *
 * A target is one file, spec/fuzz/<name>.c, that defines three things:
 *
 *   int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
 *       feed one input to the parser; return 0. Any error status is fine — only a
 *       crash, a hang or a sanitizer report is a finding.
 *   int fuzz_setup(void);
 *       once per process, before the first input (0 = ready).
 *   int fuzz_seeds(const char *dir);
 *       write a small seed corpus into dir with fuzz_seed() (0 = done). Seeds are
 *       made by the project's own writers, never copied from third-party files.
 *
 * `make fuzz` finds the .c files of spec/fuzz by wildcard, links each with fuzz.c into
 * build-fuzz/fuzz-<name>, runs `MS_FUZZ_SEEDS=DIR build-fuzz/fuzz-<name>` to
 * write the seeds, then fuzzes for FUZZ_SECONDS (see spec/fuzz/NOTES.md).
 */
#ifndef MS_SPEC_FUZZ_H
#define MS_SPEC_FUZZ_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);
int fuzz_setup(void);
int fuzz_seeds(const char *dir);

/* The input as a file: <a private temporary folder>/<name>, rewritten on each
 * call (the folder is removed at exit). Returns its path. */
const char *fuzz_file(const char *name, const void *data, size_t n);
/* The private temporary folder itself. */
const char *fuzz_dir(void);
/* Writes dir/name (a seed); 0 on success. */
int fuzz_seed(const char *dir, const char *name, const void *data, size_t n);
/* Reads a whole file (malloc'd, *n bytes), or NULL. */
uint8_t *fuzz_read(const char *path, size_t *n);

/*
 * Patch inputs: an input that starts with FUZZ_PATCH_TAG is not a file but edits
 * of a valid base file the target holds: after the tag, records of
 * (uint32 offset, uint8 length, length bytes) each overwrite the base at offset
 * (modulo its size), and a record with length 0 truncates it there. This lets
 * small inputs reach the checks behind a parser's size gates (a tokenizer.model
 * has 128,000 lines) while raw inputs still cover the front door.
 */
#define FUZZ_PATCH_TAG "PATCH\n"
/* Applies a patch input to base (n_base bytes): a malloc'd result, *n_out bytes;
 * NULL when data is not a patch input. */
uint8_t *fuzz_patch(const uint8_t *base, size_t n_base, const uint8_t *data, size_t n, size_t *n_out);
/* One patch record appended to buf at *len (the caller sizes buf). */
void fuzz_patch_record(uint8_t *buf, size_t *len, uint32_t offset, const void *bytes, uint8_t n);
#endif
