/*
 * engine/host/main.c — the `moonspeed` executable.
 *
 * A thin host: it embeds LuaJIT, finds the Lua modules, and hands argv to
 * lua/moonspeed/cli.lua. Everything a user sees (commands, messages, the
 * training loop) lives in Lua; the engine is reached through LuaJIT's FFI,
 * which resolves the ms_* symbols in this very executable (it is linked with
 * -Wl,-E so they are exported).
 *
 * The Lua root — the folder holding lua/moonspeed/cli.lua and recipes/ — is,
 * in order of preference:
 *   1. $MOONSPEED_HOME, when set;
 *   2. <exe_dir>/..                 (in a source tree: build/moonspeed);
 *   3. <exe_dir>/../share/moonspeed (installed: <prefix>/bin/moonspeed).
 * package.path gets <root>/lua and <root>/build/lua (where the generated
 * FFI declarations live in a source tree). The global MOONSPEED_ROOT holds the
 * root so the CLI can find recipes/default.lua.
 *
 * Exit status: what cli.main returns (0 ok, 1 failure, 2 bad usage); an error
 * that escapes the CLI is printed on stderr and gives 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <editline/readline.h>

/*
 * The REPL reaches libedit through the FFI, and the static libedit is linked
 * only member by member as something references it. Referencing the entry
 * points here pulls them into the executable, where -Wl,-E exports them.
 */
typedef void (*any_fn)(void);
volatile any_fn ms_host_keep_libedit[] = {
    (any_fn)readline,     (any_fn)add_history,   (any_fn)read_history,
    (any_fn)write_history, (any_fn)using_history, (any_fn)stifle_history,
    (any_fn)history_truncate_file,
};

static int is_root(const char *dir) {
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/lua/moonspeed/cli.lua", dir);
    return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Writes the canonical Lua root into root (PATH_MAX bytes); 0 on success. */
static int find_root(char *root, char *why, size_t why_len) {
    const char *home = getenv("MOONSPEED_HOME");
    if (home && *home) {
        if (!realpath(home, root) || !is_root(root)) {
            snprintf(why, why_len,
                     "MOONSPEED_HOME=%s does not hold lua/moonspeed/cli.lua; "
                     "point it at a moonspeed source tree or <prefix>/share/moonspeed", home);
            return 1;
        }
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(why, why_len, "cannot read /proc/self/exe (%s); set MOONSPEED_HOME", strerror(errno));
        return 1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    const char *candidates[] = {"%s/..", "%s/../share/moonspeed"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char dir[PATH_MAX];
        int len = snprintf(dir, sizeof dir, candidates[i], exe);
        if (len <= 0 || (size_t)len >= sizeof dir) continue;
        if (realpath(dir, root) && is_root(root)) return 0;
    }
    snprintf(why, why_len,
             "cannot find the Lua modules: neither %s/../lua nor %s/../share/moonspeed/lua "
             "holds moonspeed/cli.lua; set MOONSPEED_HOME to the folder that holds lua/",
             exe, exe);
    return 1;
}

/* Message handler: keep the message; add a traceback when MOONSPEED_DEBUG is set. */
static int on_error(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    const char *debug = getenv("MOONSPEED_DEBUG");
    if (debug && *debug && strcmp(debug, "0") != 0) luaL_traceback(L, L, msg, 1);
    else lua_pushstring(L, msg);
    return 1;
}

/* The Lua side of startup: paths, arg, then cli.main(arg). */
static const char *boot =
    "local root = ...\n"
    "MOONSPEED_ROOT = root\n"
    "package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' ..\n"
    "               root .. '/build/lua/?.lua;' .. package.path\n"
    "local cli = require 'moonspeed.cli'\n"
    "return cli.main(arg)\n";

int main(int argc, char **argv) {
    char root[PATH_MAX], why[2 * PATH_MAX + 256];
    if (find_root(root, why, sizeof why) != 0) {
        fprintf(stderr, "moonspeed: %s\n", why);
        return 1;
    }
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "moonspeed: cannot create the Lua state (out of memory)\n");
        return 1;
    }
    luaL_openlibs(L);

    /* arg = { [0] = argv[0], argv[1], ... } as the standalone interpreter does. */
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_setglobal(L, "arg");

    int status = 1;
    lua_pushcfunction(L, on_error);
    int handler = lua_gettop(L);
    if (luaL_loadbuffer(L, boot, strlen(boot), "=moonspeed") != 0) {
        fprintf(stderr, "moonspeed: %s\n", lua_tostring(L, -1));
    } else {
        lua_pushstring(L, root);
        if (lua_pcall(L, 1, 1, handler) != 0) {
            fprintf(stderr, "moonspeed: %s\n", lua_tostring(L, -1));
        } else if (lua_isnumber(L, -1)) {
            status = (int)lua_tointeger(L, -1);
        } else {
            status = lua_toboolean(L, -1) || lua_isnil(L, -1) ? 0 : 1;
        }
    }
    fflush(stdout);
    lua_close(L);  /* runs finalizers: engines not freed explicitly are freed here */
    return status;
}
