-- lua/moonspeed/tokenize.lua — the tokenizer commands of the command line:
--
--   moonspeed encode --tokenizer PATH [FILE|-] [--json] [--specials] [--bos] [--eos]
--   moonspeed decode --tokenizer PATH [FILE|-]
--   moonspeed tokenize --tokenizer PATH --out DIR [--val-fraction F] [--shard-tokens N] [--threads N] INPUTS...
--
-- PATH is a tokenizer.model (Meta), a tokenizer.json (Hugging Face) or "bytes".
-- cli.lua registers these commands; commands(usage, say) returns them, given
-- cli's bad-usage error and its stdout writer.

local M = {}

local function read_input(path)
  if not path or path == "-" then return io.stdin:read("*a"), "standard input" end
  local f, err = io.open(path, "rb")
  if not f then error(("cannot read %s: %s"):format(path, tostring(err)), 0) end
  local s = f:read("*a")
  f:close()
  return s, path
end

local function load_tokenizer(opts, usage)
  if not opts.tokenizer then usage("missing --tokenizer PATH (a tokenizer.model, a tokenizer.json, or bytes)") end
  return require("moonspeed.tokenizer").load(opts.tokenizer)
end

-- Ids from text: a JSON array, or one integer per line. Errors name the line.
local function parse_ids(text, where, vocab, tok_id)
  local ids = {}
  local function check(id, line, raw)
    if not id or id ~= math.floor(id) or id < 0 or id >= vocab then
      error(("%s line %d: %q is not a token id of tokenizer %s (0..%d)"):format(where, line, raw, tok_id, vocab - 1), 0)
    end
    ids[#ids + 1] = id
  end
  if text:match("^%s*%[") then
    local line = 1
    local body = text:match("^%s*%[(.*)%]%s*$")
    if not body then error(("%s: a JSON array of ids must end with ]"):format(where), 0) end
    for item, sep in body:gmatch("([^,]*)(,?)") do
      local raw = item:match("^%s*(.-)%s*$")
      if raw ~= "" or sep == "," then check(tonumber(raw), line, raw) end
      local _, nl = item:gsub("\n", "")
      line = line + nl
      if sep == "" then break end
    end
  else
    local line = 0
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do
      line = line + 1
      local raw = l:match("^%s*(.-)%s*$")
      if raw ~= "" then check(tonumber(raw), line, raw) end
    end
  end
  return ids
end
M.parse_ids = parse_ids

local function thousands(n)
  local s = tostring(math.floor(n))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

function M.commands(usage, say)
  local list = {}

  list[#list + 1] = {
    name = "encode",
    summary = "print the token ids of a text",
    help = [[
usage: moonspeed encode --tokenizer PATH [FILE|-] [--json] [--specials] [--bos] [--eos]

Prints the token ids of FILE (default: standard input), one per line.

options:
  --tokenizer PATH   a tokenizer.model (Meta), a tokenizer.json (Hugging Face), or
                     bytes (one token per byte); `make data-llama3` fetches Llama 3's
  --json             one JSON array instead of one id per line
  --specials         read special-token names such as <|eot_id|> as their ids (by
                     default they are plain text)
  --bos, --eos       add the begin-of-text / end-of-text id
]],
    spec = { flags = { ["--tokenizer"] = "string", ["--json"] = "bool", ["--specials"] = "bool",
                       ["--bos"] = "bool", ["--eos"] = "bool" }, max_positional = 1 },
    run = function(opts, pos)
      local tok = load_tokenizer(opts, usage)
      local text = read_input(pos[1])
      local buf, n = tok:encode_cdata(text, { specials = opts.specials, bos = opts.bos, eos = opts.eos })
      local out, parts = io.stdout, {}
      local sep = opts.json and ", " or "\n"
      if opts.json then out:write("[") end
      for i = 0, n - 1 do
        parts[#parts + 1] = tostring(buf[i])
        if #parts == 8192 or i == n - 1 then
          out:write(table.concat(parts, sep), i < n - 1 and sep or "")
          parts = {}
        end
      end
      if opts.json then out:write("]\n") elseif n > 0 then out:write("\n") end
      tok:free()
      return 0
    end,
  }

  list[#list + 1] = {
    name = "decode",
    summary = "print the text of token ids",
    help = [[
usage: moonspeed decode --tokenizer PATH [FILE|-]

Reads token ids from FILE (default: standard input) — one per line, or one JSON
array — and writes the text they encode, byte for byte (special tokens as their
names). A UTF-8 character split across tokens comes out whole.

options:
  --tokenizer PATH   a tokenizer.model, a tokenizer.json, or bytes
]],
    spec = { flags = { ["--tokenizer"] = "string" }, max_positional = 1 },
    run = function(opts, pos)
      local tok = load_tokenizer(opts, usage)
      local text, where = read_input(pos[1])
      local ids = parse_ids(text, where, tok.vocab_size, tok.id)
      io.stdout:write(tok:decode(ids))
      tok:free()
      return 0
    end,
  }

  list[#list + 1] = {
    name = "tokenize",
    summary = "turn text files, JSONL and directories into train/val token shards",
    help = [[
usage: moonspeed tokenize --tokenizer PATH --out DIR [--val-fraction F] [--shard-tokens N]
                          [--threads N] INPUTS...

Tokenizes INPUTS into DIR/train-00000.bin, ... and DIR/val-00000.bin, ...:
  - plain-text files: one document each;
  - JSONL files (.jsonl, .json): one document per line, its "text" field;
  - directories: every file below them, in name order (hidden ones skipped).
Each document is BOS ... EOS. Every shard carries the tokenizer's id and vocabulary
size, and is written whole or not at all. The text is cut into blocks of about
16 KiB (at line ends, where no token crosses); a block is wholly train or val, so
the split is exact and spread over the corpus. Threads encode blocks in parallel;
the output does not depend on their number. A progress bar with MB/s goes to stderr.

options:
  --tokenizer PATH     a tokenizer.model, a tokenizer.json, or bytes
  --out DIR            where the shards go (created; must not hold shards already)
  --val-fraction F     share of blocks held out for validation, 0 <= F < 1 (0.01)
  --shard-tokens N     tokens per shard file at most (67108864)
  --threads N          encoding threads (all cores)
]],
    spec = { flags = { ["--tokenizer"] = "string", ["--out"] = "string", ["--val-fraction"] = "number",
                       ["--shard-tokens"] = "int", ["--threads"] = "int" }, max_positional = 1e6 },
    run = function(opts, pos)
      local sys = require "moonspeed.sys"
      if #pos == 0 then usage("missing INPUTS (text files, JSONL files or directories)") end
      if not opts.out then usage("missing --out DIR") end
      local f = opts["val-fraction"] or 0.01
      if f < 0 or f >= 1 then usage("--val-fraction must be in [0, 1)") end
      if opts["shard-tokens"] and opts["shard-tokens"] < 2 then usage("--shard-tokens must be at least 2") end
      if opts.threads and opts.threads < 1 then usage("--threads must be at least 1") end
      for _, p in ipairs(pos) do
        if not sys.exists(p) then error(("input %s does not exist"):format(p), 0) end
      end
      local tok = load_tokenizer(opts, usage)
      local ok, err = sys.mkdir_p(opts.out)
      if not ok then error(err, 0) end
      local rep = tok:tokenize(pos, opts.out, { val_fraction = f, shard_tokens = opts["shard-tokens"],
        threads = opts.threads, progress = true })
      local function shards(n) return n == 1 and "1 shard" or (n .. " shards") end
      say(("tokenized %d file%s (%s documents, %.1f MB) in %.2f s: %s train tokens in %s, %s val tokens in %s -> %s"):format(
        rep.files, rep.files == 1 and "" or "s", thousands(rep.documents), rep.bytes / 1e6, rep.seconds,
        thousands(rep.train_tokens), shards(rep.train_shards), thousands(rep.val_tokens), shards(rep.val_shards),
        opts.out))
      if f > 0 and rep.val_tokens == 0 then
        io.stderr:write(("moonspeed tokenize: no block was held out for validation (the inputs are too small for "
          .. "--val-fraction %g); raise it\n"):format(f))
      end
      local tk = opts.tokenizer == "bytes" and '"bytes"' or ("%q"):format(opts.tokenizer)
      say(("recipe: data = { tokenizer = %s, train = %q, val = %q }, model = { vocab_size = %d }"):format(
        tk, opts.out .. "/train-00000.bin", opts.out .. "/val-00000.bin", tok.vocab_size))
      tok:free()
      return 0
    end,
  }

  return list
end

return M
