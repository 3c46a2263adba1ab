/*
 * spec/c/fuzz_regressions_test.c — inputs that once crashed or hung a parser
 * (found with the fuzz targets of spec/fuzz, NOTES.md there), each with the
 * exact message it must now give. A hang would stop the spec at its alarm, so
 * it fails instead of stalling the run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "include/moonspeed.h"

/* Loads text as a tokenizer file; returns the status (the message is in ms_last_error). */
static ms_status load_text(const char *dir, const char *name, const char *text, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return MS_ERR_IO;
    fputs(text, f);
    fclose(f);
    ms_tokenizer *t = NULL;
    ms_status st = ms_tokenizer_load(path, &t);
    ms_tokenizer_free(t);
    return st;
}

/* tokenizer.json readers that wanted more events than the document held spun on
 * libyaml's empty events after the stream's end: a pre_tokenizer that is the
 * string "Regex", and a complex (non-string) key inside model or added_tokens. */
TEST(fuzz_tokenizer_json_never_reads_past_the_end) {
    alarm(20);
    char dir[256], path[320], want[600];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ms-fuzzreg-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(dir) != NULL);

    CHECK(load_text(dir, "regex.json", "{\"pre_tokenizer\": \"Regex\"}", path, sizeof path) == MS_ERR_FORMAT);
    snprintf(want, sizeof want, "tokenizer %s: no \"model\" object; this is not a Hugging Face tokenizer.json", path);
    CHECK_MSG(strcmp(ms_last_error(), want) == 0, "got: %s", ms_last_error());
    unlink(path);

    static const char *past_end[] = {"{\"model\": {[1, 2]: 3}}", "{\"added_tokens\": [{[1, 2]: 3}]}"};
    for (int i = 0; i < 2; i++) {
        CHECK(load_text(dir, "key.json", past_end[i], path, sizeof path) == MS_ERR_FORMAT);
        snprintf(want, sizeof want, "tokenizer %s: the document ends inside a value; the file is not valid JSON "
                 "(truncated or corrupt)", path);
        CHECK_MSG(strcmp(ms_last_error(), want) == 0, "input %s: got: %s", past_end[i], ms_last_error());
        unlink(path);
    }
    rmdir(dir);
    return 0;
}
