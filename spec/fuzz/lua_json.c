/*
 * spec/fuzz/lua_json.c — the JSON reader (lua/moonspeed/json.lua): json.decode
 * of the input must return a value or (nil, "json: ... at byte N"), never
 * raise; a decoded value must encode and decode again to the same encoding.
 * Lua errors raised by the harness's own budgets (luaf.h) are not findings.
 */
#include <stdio.h>

#include "luaf.h"

int fuzz_setup(void) { return 0; }

static const char *CHUNK =
    "local s = ...\n"
    "local json = require 'moonspeed.json'\n"
    "local ok, v, err = pcall(json.decode, s)\n"
    "if FUZZ_VERBOSE then io.stderr:write(tostring(ok) .. ' ' .. tostring(v) .. ' ' .. tostring(err) .. '\\n') end\n"
    "if not ok then\n"
    "  if not tostring(v):match('^fuzz:') and not tostring(v):match('memory') then\n"
    "    FUZZ_BAD = 'decode raised: ' .. tostring(v)\n"
    "  end\n"
    "  return\n"
    "end\n"
    "if v == nil then\n"
    "  if type(err) ~= 'string' or not err:match('^json: .* at byte %d+$') then\n"
    "    FUZZ_BAD = 'decode failed without a message: ' .. tostring(err)\n"
    "  end\n"
    "  return\n"
    "end\n"
    "local text = json.encode(v)\n"
    "local back, err2 = json.decode(text)\n"
    "if back == nil then FUZZ_BAD = 'encode gave JSON that does not decode: ' .. tostring(err2) .. ' in ' .. text\n"
    "elseif json.encode(back) ~= text then FUZZ_BAD = 'encoding changed on a round trip: ' .. text end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    lua_State *L = luaf_new();
    if (!L) return 0;
    const char *args[1] = {(const char *)data};
    size_t lens[1] = {n};
    int st = luaf_run(L, CHUNK, 1, args, lens);
    lua_getglobal(L, "FUZZ_BAD");
    if (st == 0 && lua_isstring(L, -1)) {
        fprintf(stderr, "fuzz lua_json: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_close(L);
    return 0;
}

int fuzz_seeds(const char *dir) {
    static const char *seeds[][2] = {
        {"object", "{\"step\": 3, \"loss\": 2.5, \"name\": \"a \\\"q\\\" \\\\ \\n\", \"list\": [1, 2, {\"x\": false}]}"},
        {"unicode", "{\"a\":\"\\u00e9\\u20ac\\ud83d\\ude00\",\"b\":null}"},
        {"numbers", "[1.5e3, -0.25, true, 0, -0, 1e308, 1e-320, 12345678901234567890]"},
        {"bad", "{\"a\":1,}"},
        {"nested", "[[[[[[[[[[{\"a\":[[[]]]}]]]]]]]]]]"},
        {"jsonl", "{\"text\": \"In the beginning\"}\n"},
        {"escapes", "\"\\b\\f\\n\\r\\t\\/\\\\\\\"\\ud800\""},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        if (fuzz_seed(dir, seeds[i][0], seeds[i][1], strlen(seeds[i][1]))) return 1;
    char deep[2 * 600]; /* deeper than json.decode's limit: an error, not a stack overflow */
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    return fuzz_seed(dir, "deep", deep, sizeof deep);
}
