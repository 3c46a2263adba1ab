-- lua/moonspeed/srcindex.lua — where each key of a recipe's source is written.
--
-- A small Lua lexer that never executes: index(src, file) finds, for every key
-- of every table constructor, its path ("train.lr") and line, and the first
-- line each helper is called on (extend, sweep, ...); a key set twice in one
-- constructor is an error with file:line. where(file, idx, path) turns a key
-- path into the "file:line" that messages about it start with. The sandbox
-- (sandbox.lua) indexes every recipe file before running it.

local M = {}

local function lex(src)
  local toks, i, line, n = {}, 1, 1, #src
  local function count_lines(a, b)
    local _, k = src:sub(a, b):gsub("\n", "")
    line = line + k
  end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line = line + 1; i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local lvl = src:match("^%[(=*)%[", i + 2)
      if lvl then
        local close = "]" .. lvl .. "]"
        local j = src:find(close, i, true) or n
        count_lines(i, j)
        i = j + #close
      else
        i = src:find("\n", i, true) or n + 1
      end
    elseif c == '"' or c == "'" then
      local j, start, buf = i + 1, line, {}
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then
          buf[#buf + 1] = src:sub(j, j + 1)
          if src:sub(j + 1, j + 1) == "\n" then line = line + 1 end
          j = j + 2
        elseif d == c or d == "\n" then
          break
        else
          buf[#buf + 1] = d; j = j + 1
        end
      end
      toks[#toks + 1] = { t = "string", v = table.concat(buf), line = start }
      i = j + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local lvl = src:match("^%[(=*)%[", i)
      local close = "]" .. lvl .. "]"
      local j = src:find(close, i, true) or n
      local start = line
      count_lines(i, j)
      toks[#toks + 1] = { t = "string", v = src:sub(i + #lvl + 2, j - 1), line = start }
      i = j + #close
    elseif c:match("[%a_]") then
      local name = src:match("^[%w_]+", i)
      toks[#toks + 1] = { t = "name", v = name, line = line }
      i = i + #name
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local num = src:match("^[%w_%.]+", i)
      if num:match("[eEpP]$") and src:sub(i + #num, i + #num):match("[%+%-]") then
        num = num .. src:match("^[%+%-][%w_%.]*", i + #num)
      end
      toks[#toks + 1] = { t = "number", v = num, line = line }
      i = i + #num
    else
      local op = c
      for _, o in ipairs({ "...", "..", "==", "~=", "<=", ">=", "::", "<<", ">>", "//" }) do
        if src:sub(i, i + #o - 1) == o then op = o break end
      end
      toks[#toks + 1] = { t = "op", v = op, line = line }
      i = i + #op
    end
  end
  return toks
end

local function join(a, b)
  if a == nil or a == "" then return b end
  return a .. "." .. b
end

-- Returns { lines = { ["train.lr"] = 12, ... }, calls = { extend = 3, ... } };
-- errors on a duplicate key.
function M.index(src, file)
  local toks = lex(src)
  local lines = {}
  local stack = { { kind = "chunk", path = "" } }
  local function enclosing_table_path()
    for k = #stack, 1, -1 do
      if stack[k].kind == "{" then return stack[k].path end
    end
    return ""
  end
  local calls = {}
  for j, tok in ipairs(toks) do
    if tok.t == "name" and toks[j + 1] and toks[j + 1].v == "(" and not calls[tok.v] then calls[tok.v] = tok.line end
  end
  local k = 1
  while k <= #toks do
    local tok, prev = toks[k], toks[k - 1]
    local top = stack[#stack]
    local at_key = top.kind == "{" and prev and prev.t == "op"
      and (prev.v == "{" or prev.v == "," or prev.v == ";")
    local key, key_line, skip
    if at_key and tok.t == "name" and toks[k + 1] and toks[k + 1].t == "op" and toks[k + 1].v == "=" then
      key, key_line, skip = tok.v, tok.line, 1
    elseif at_key and tok.t == "op" and tok.v == "[" and toks[k + 1] and toks[k + 1].t == "string"
      and toks[k + 2] and toks[k + 2].v == "]" and toks[k + 3] and toks[k + 3].v == "=" then
      key, key_line, skip = toks[k + 1].v, tok.line, 3
    end
    if key then
      local path = join(top.path, key)
      if top.keys[key] then
        error(("%s:%d: duplicate key %s (first set at line %d)"):format(file, key_line, path, top.keys[key]), 0)
      end
      top.keys[key] = key_line
      if not lines[path] then lines[path] = key_line end
      k = k + skip
    elseif tok.t == "op" and tok.v == "{" then
      local path = enclosing_table_path()
      local eq, name = toks[k - 1], toks[k - 2]
      if eq and eq.t == "op" and eq.v == "=" and name and (name.t == "name" or name.t == "string") then
        path = join(path, name.v)
      elseif eq and eq.t == "op" and eq.v == "=" and name and name.v == "]" and toks[k - 3]
        and toks[k - 3].t == "string" then
        path = join(path, toks[k - 3].v)
      end
      stack[#stack + 1] = { kind = "{", path = path, keys = {} }
    elseif tok.t == "op" and (tok.v == "(" or tok.v == "[") then
      stack[#stack + 1] = { kind = tok.v, path = top.path }
    elseif tok.t == "op" and (tok.v == "}" or tok.v == ")" or tok.v == "]") then
      if #stack > 1 then stack[#stack] = nil end
    end
    k = k + 1
  end
  return { lines = lines, calls = calls }
end

-- file:line of a key path in an indexed source (or just the file).
function M.where(file, idx, path)
  local line = idx and idx.lines[path]
  if not line and idx then  -- e.g. a table built in a local and assigned later
    local best
    for p, l in pairs(idx.lines) do
      if p:sub(-#path - 1) == "." .. path and (not best or l < best) then best = l end
    end
    local last = path:match("([^.]+)$")
    if not best and last ~= path then
      for p, l in pairs(idx.lines) do
        if (p == last or p:sub(-#last - 1) == "." .. last) and (not best or l < best) then best = l end
      end
    end
    line = best
  end
  if line then return ("%s:%d"):format(file, line) end
  return file
end

return M
