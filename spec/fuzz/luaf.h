/*
 * spec/fuzz/luaf.h — LuaJIT embedded in a fuzz target, as engine/host/main.c
 * embeds it, for the Lua parsers (recipe loading, json.decode).
 *
 * Each input gets a fresh Lua state (so one input cannot change what the next
 * sees) with:
 *   - package.path over <root>/lua and <root>/build/lua, root = $MOONSPEED_HOME
 *     or the working folder (make fuzz runs from the source tree);
 *   - the JIT compiler off, so the hooks below see every instruction;
 *   - an allocator capped at LUAF_MEMORY bytes: a recipe that builds a huge
 *     string gets Lua's "not enough memory" error, not the fuzzer's RSS limit;
 *   - a budget of LUAF_STEPS VM instructions, after which every count hook
 *     raises an error (a recipe may loop forever; that is not a parser bug);
 *   - coverage for libFuzzer: a line hook hashes (chunk, previous line, line)
 *     into extra counters, so the fuzzer is guided by the Lua code it reaches,
 *     not only by the C it runs through.
 * Lua errors are expected outcomes; only crashes, hangs and sanitizer reports
 * are findings. MS_FUZZ_VERBOSE=1 prints each input's outcome (to replay one:
 * MS_FUZZ_VERBOSE=1 build-fuzz/fuzz-lua_recipe FILE).
 */
#ifndef MS_SPEC_FUZZ_LUAF_H
#define MS_SPEC_FUZZ_LUAF_H
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "fuzz.h"

#define LUAF_MEMORY (256u << 20)
#define LUAF_STEPS 20000000L
#define LUAF_COUNTERS (1 << 16)

__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t luaf_counters[LUAF_COUNTERS];

static size_t luaf_used;
static long luaf_steps;
static uint32_t luaf_prev;

static inline void *luaf_alloc(void *ud, void *p, size_t osize, size_t nsize) {
    (void)ud;
    if (nsize == 0) {
        free(p);
        luaf_used -= p ? osize : 0;
        return NULL;
    }
    size_t old = p ? osize : 0;
    if (nsize > old && luaf_used + (nsize - old) > LUAF_MEMORY) return NULL;
    void *q = realloc(p, nsize);
    if (q) luaf_used = luaf_used - old + nsize;
    return q;
}

static inline void luaf_hook(lua_State *L, lua_Debug *ar) {
    if (ar->event == LUA_HOOKCOUNT) {
        luaf_steps += 1000;
        if (luaf_steps > LUAF_STEPS) luaL_error(L, "fuzz: instruction budget spent");
        return;
    }
    if (!lua_getinfo(L, "S", ar)) return;
    uint32_t h = 2166136261u;
    for (const char *s = ar->source; s && *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    h ^= (uint32_t)ar->currentline * 2654435761u;
    uint32_t edge = (h ^ (luaf_prev >> 1)) & (LUAF_COUNTERS - 1);
    luaf_prev = h;
    if (luaf_counters[edge] < 255) luaf_counters[edge]++;
}

/* A fresh state with the moonspeed modules on package.path; NULL when out of memory. */
static inline lua_State *luaf_new(void) {
    luaf_used = 0;
    luaf_steps = 0;
    luaf_prev = 0;
    lua_State *L = lua_newstate(luaf_alloc, NULL);
    if (!L) return NULL;
    luaL_openlibs(L);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    const char *home = getenv("MOONSPEED_HOME");
    const char *root = home && *home ? home : ".";
    lua_pushstring(L, root);
    lua_setglobal(L, "MOONSPEED_ROOT");
    lua_pushboolean(L, getenv("MS_FUZZ_VERBOSE") != NULL);
    lua_setglobal(L, "FUZZ_VERBOSE");
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/build/lua/?.lua", root, root, root);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
    lua_sethook(L, luaf_hook, LUA_MASKLINE | LUA_MASKCOUNT, 1000);
    return L;
}

/* Runs chunk (Lua source) with the given string arguments under pcall; returns
 * lua_pcall's status. The chunk's own failures are the caller's to judge. */
static inline int luaf_run(lua_State *L, const char *chunk, int nargs, const char *const *args, const size_t *lens) {
    if (luaL_loadbuffer(L, chunk, strlen(chunk), "=fuzz") != 0) return -1;
    for (int i = 0; i < nargs; i++) lua_pushlstring(L, args[i], lens[i]);
    return lua_pcall(L, nargs, 0, 0);
}
#endif
