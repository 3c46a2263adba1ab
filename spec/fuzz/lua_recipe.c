/*
 * spec/fuzz/lua_recipe.c — recipe loading (lua/moonspeed/recipe.lua): the input
 * is a recipe file, loaded through recipe.load in its sandbox with the
 * command-line overrides that follow a line "--[[overrides]]" (one key=value a
 * line), and then written out as recipe.serialize does for a run directory,
 * which must load again. Any Lua error is a clean outcome; luaf.h says why.
 */
#include <stdio.h>

#include "luaf.h"

int fuzz_setup(void) { return 0; }

/* The loader must turn every failure into an error string; a resolved recipe
 * must serialize into a file that loads to the same recipe. */
static const char *CHUNK =
    "local src, path, again = ...\n"
    "local recipe = require 'moonspeed.recipe'\n"
    "local body, rest = src:match('^(.-)%-%-%[%[overrides%]%]\\n(.*)$')\n"
    "local overrides = {}\n"
    "for line in (rest or ''):gmatch('[^\\n]+') do overrides[#overrides + 1] = line end\n"
    "local f = assert(io.open(path, 'wb')); f:write(body or src); f:close()\n"
    "local ok, r = pcall(recipe.load, path, overrides)\n"
    "if FUZZ_VERBOSE then io.stderr:write(ok and 'loaded\\n' or ('error: ' .. tostring(r) .. '\\n')) end\n"
    "if not ok then\n"
    "  if type(r) ~= 'string' then FUZZ_BAD = 'a non-string error: ' .. type(r) end\n"
    "  return\n"
    "end\n"
    "local text = recipe.serialize(r)\n"
    "f = assert(io.open(again, 'wb')); f:write(text); f:close()\n"
    "local ok2, r2 = pcall(recipe.load, again)\n"
    "if not ok2 then FUZZ_BAD = 'the serialized recipe does not load: ' .. tostring(r2) end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    lua_State *L = luaf_new();
    if (!L) return 0;
    char path[512], again[512];
    snprintf(path, sizeof path, "%s/recipe.lua", fuzz_dir());
    snprintf(again, sizeof again, "%s/again.lua", fuzz_dir());
    const char *args[3] = {(const char *)data, path, again};
    size_t lens[3] = {n, strlen(path), strlen(again)};
    int st = luaf_run(L, CHUNK, 3, args, lens);
    lua_getglobal(L, "FUZZ_BAD");
    if (st == 0 && lua_isstring(L, -1)) {
        fprintf(stderr, "fuzz lua_recipe: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_close(L);
    return 0;
}

int fuzz_seeds(const char *dir) {
    static const char *seeds[][2] = {
        {"extend", "return extend('default', { train = { steps = 10, lr = function(r) return 1e-3 end } })\n"},
        {"remove", "return extend('default.lua', { train = { warmup = remove }, model = { dim = 64 } })\n"},
        {"table", "return { model = { name = 'x', dim = 32, n_layers = 1, n_heads = 2, n_kv_heads = 1, "
                  "ffn_dim = 64 }, train = { steps = 3, batch = 4, micro_batch = 2 } }\n"},
        {"dup", "return {\n  train = { lr = 1, lr = 2 },\n}\n"},
        {"unknown", "return { train = { lrr = 3e-4 } }\n"},
        {"env", "return { threads = env('MS_FUZZ_THREADS', 2), precision = 'bf16' }\n"},
        {"overrides", "return extend('default', {})\n--[[overrides]]\ntrain.steps=5\nlr=3e-4\nmodel.name=abc\n"},
        {"sandbox", "return { device = os.getenv('X') }\n"},
        {"cycle", "return extend('recipe', {})\n"},
        {"strings", "local s = [==[a]]b]==] return { model = { name = s .. \"\\\"q\" } } -- c\n"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        if (fuzz_seed(dir, seeds[i][0], seeds[i][1], strlen(seeds[i][1]))) return 1;
    char *real = NULL;
    size_t n = 0;
    if ((real = (char *)fuzz_read("recipes/default.lua", &n))) {
        int bad = fuzz_seed(dir, "default", real, n);
        free(real);
        if (bad) return 1;
    }
    return 0;
}
