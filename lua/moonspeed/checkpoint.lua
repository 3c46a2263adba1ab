-- lua/moonspeed/checkpoint.lua — sharded, atomic, resumable checkpoints.
--
-- A checkpoint root (checkpoint.dir, or <run dir>/checkpoints) holds
--
--   step-00000020/            one complete checkpoint
--     rank-00000-of-00002.state   each rank's fp32 master and Adam moments (ckpt/state.c)
--     rank-00001-of-00002.state
--     meta.json               step, world, ZeRO stage, data position, RNG,
--                             schedule, the resolved recipe, each file's size
--                             and CRC-32C — written last, by rank 0
--   latest                    "step-00000020": the newest, replaced atomically
--   .tmp-step-00000030/       a save in progress (or one a crash interrupted)
--   .trash-step-00000010/     a checkpoint being removed (renamed first)
--
-- A save writes everything into the .tmp- directory (every file fsync'ed),
-- then rank 0 writes meta.json, renames the directory into place, fsyncs the
-- root, replaces `latest` and removes all but the newest `keep` checkpoints.
-- A crash at any moment leaves either the old set or the new one, never a
-- half-written checkpoint under a final name; a damaged one (a truncated or
-- modified file) fails its checksums and resuming skips it with the reason.
-- Every rank runs the same calls in the same order (saving and loading are
-- collective); the root must be one shared directory for all ranks.

local engine_mod = require "moonspeed.engine"
local fmt = require "moonspeed.fmt"
local json = require "moonspeed.json"
local plan = require "moonspeed.plan"
local sys = require "moonspeed.sys"

local M = {}

M.FORMAT, M.VERSION = "moonspeed checkpoint", 1

local function name_of(step) return ("step-%08d"):format(step) end

-- The checkpoint root of a run.
function M.root(r, run_dir)
  return r.checkpoint.dir ~= "" and r.checkpoint.dir or (run_dir .. "/checkpoints")
end

-- The checkpoints under root, newest first: { name, step, path }.
function M.list(root)
  local found = {}
  for _, n in ipairs(sys.list_dir(root)) do
    local step = n:match("^step%-(%d+)$")
    if step then found[#found + 1] = { name = n, step = tonumber(step), path = root .. "/" .. n } end
  end
  table.sort(found, function(a, b) return a.step > b.step end)
  return found
end

-- Reads and checks a checkpoint's meta.json: the table, or nil and why not.
function M.read_meta(path)
  local text = sys.read_file(path .. "/meta.json")
  if not text then return nil, "meta.json is missing (the save did not finish)" end
  local ok, meta = pcall(json.decode, text)
  if not ok or type(meta) ~= "table" then return nil, "meta.json is not valid JSON: " .. tostring(meta) end
  if meta.format ~= M.FORMAT or meta.version ~= M.VERSION then
    return nil, ("meta.json is not a %s of version %d"):format(M.FORMAT, M.VERSION)
  end
  if type(meta.files) ~= "table" or #meta.files ~= meta.world_size then
    return nil, ("meta.json lists %s files for a world of %s ranks"):format(
      type(meta.files) == "table" and #meta.files or "no", tostring(meta.world_size))
  end
  for i, f in ipairs(meta.files) do
    if type(f.name) ~= "string" or type(f.bytes) ~= "number" or type(f.crc32c) ~= "string"
      or not f.crc32c:match("^%x%x%x%x%x%x%x%x$") then
      return nil, ("meta.json: files[%d] needs a name, bytes and an 8-digit hex crc32c"):format(i)
    end
  end
  return meta
end

local function file_records(meta)
  local files = {}
  for i, f in ipairs(meta.files) do
    files[i] = { name = f.name, bytes = f.bytes, crc32c = tonumber(f.crc32c, 16) }
  end
  return files
end

-- Checks every file of a checkpoint against its meta.json (size and CRC-32C),
-- without an engine: true, or false and why not. For `moonspeed checkpoint`.
function M.verify(path)
  local meta, why = M.read_meta(path)
  if not meta then return false, why end
  for _, f in ipairs(file_records(meta)) do
    local crc, bytes = engine_mod.crc32c_file(path .. "/" .. f.name)
    if not crc then return false, bytes end
    if bytes ~= f.bytes then
      return false, ("%s: %d bytes, but meta.json records %d; the file is %s"):format(f.name, bytes, f.bytes,
        bytes < f.bytes and "truncated" or "longer than written")
    end
    if crc ~= f.crc32c then
      return false, ("%s: CRC-32C is %08x, but meta.json records %08x; the file was modified or damaged")
        :format(f.name, crc, f.crc32c)
    end
  end
  return true, meta
end

-- The model keys a checkpoint must share with the recipe that resumes it.
local MODEL_KEYS = { "vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "tie_embeddings" }

local function model_mismatch(meta, r)
  local diffs = {}
  for _, k in ipairs(MODEL_KEYS) do
    local a, b = meta.model and meta.model[k], r.model[k]
    if a ~= nil and a ~= b then diffs[#diffs + 1] = ("model.%s %s vs %s"):format(k, tostring(a), tostring(b)) end
  end
  if #diffs > 0 then return table.concat(diffs, ", ") end
end

-- What makes the steps after a resume differ from the saved run's: the data
-- order is a function of (train.seed, step, sequence) over the global batch.
local function continuity_changes(meta, r)
  local out = {}
  local saved = { seed = meta.rng and meta.rng.seed, train = meta.data and meta.data.train,
                  batch = meta.step > 0 and meta.data and meta.data.sequences_seen and meta.data.sequences_seen / meta.step }
  if saved.seed and saved.seed ~= r.train.seed then out[#out + 1] = ("train.seed %s vs %s"):format(saved.seed, r.train.seed) end
  if saved.batch and saved.batch ~= r.train.batch then out[#out + 1] = ("train.batch %s vs %s"):format(saved.batch, r.train.batch) end
  if saved.train and saved.train ~= r.data.train then out[#out + 1] = ("data.train %q vs %q"):format(saved.train, r.data.train) end
  return out
end

---------------------------------------------------------------------------
-- The policy of one run: resume at the start, save between steps
---------------------------------------------------------------------------

local Policy = {}
Policy.__index = Policy

-- r: the resolved recipe; e: its engine; run_dir: rank 0's run directory;
-- opts.say / opts.warn: messages on the lead rank; opts.recipe_text: the
-- resolved recipe as written to the run directory.
function M.policy(r, e, run_dir, opts)
  opts = opts or {}
  local quiet = function() end
  local lead = e:rank() == 0
  return setmetatable({
    r = r, e = e, root = M.root(r, run_dir), lead = lead,
    say = lead and opts.say or quiet, warn = lead and opts.warn or quiet,
    recipe_text = opts.recipe_text or "",
    pending = nil,      -- { step, tmp, final } of a save being written
    saved_step = nil,   -- the newest complete checkpoint's step
  }, Policy)
end

-- Fails now, before any training, when the periodic checkpoints could not be
-- written: a folder that cannot be written, or a file system without room for
-- one checkpoint; warns when it has no room for the ones checkpoint.keep keeps.
function Policy:check_writable()
  local ok, err = sys.mkdir_p(self.root)
  if ok then
    ok, err = pcall(engine_mod.write_atomic, self.root .. "/.probe", "moonspeed\n")
    os.remove(self.root .. "/.probe")
  end
  if not ok then
    error(("checkpoints cannot be written to %s: %s; point checkpoint.dir at a writable folder; nothing was trained")
      :format(self.root, tostring(err):gsub("^ms_write_file failed: ", "")), 0)
  end
  local free = sys.fs_free(self.root)
  if not free then return end
  local params = self.e:plan().n_params
  local one = plan.checkpoint_bytes(params)
  local room = math.floor(free / one)
  if room < 1 then
    error(("a checkpoint of this run takes %s (fp32 master weights and both Adam moments of %s parameters), and the file system of %s has %s free: not even one fits; point checkpoint.dir at a larger one or make room; nothing was trained")
      :format(fmt.bytes(one), fmt.count(params), self.root, fmt.bytes(free)), 0)
  end
  local keep = self.r.checkpoint.keep
  local held = math.min(#M.list(self.root), keep)
  if held + room < keep + 1 then
    self.warn(("the file system of %s has room for %d more checkpoint%s of %s beside the %d there; with checkpoint.keep = %d, %d are on disk at once while a new one is written, so a later save will fail (the earlier checkpoints stay intact); lower checkpoint.keep or make room")
      :format(self.root, room, room == 1 and "" or "s", fmt.bytes(one), held, keep, keep + 1))
  end
end

-- Resumes as checkpoint.resume says: "auto" = the newest valid checkpoint
-- under the root (damaged or incomplete ones skipped with a warning), "none",
-- or the path of one checkpoint. Returns the step resumed at, or nil.
function Policy:resume()
  if self.lead then
    for _, n in ipairs(sys.list_dir(self.root)) do -- what a crash left behind; no rank saves before the first step
      if n:match("^%.tmp%-") or n:match("^%.trash%-") then engine_mod.remove_tree(self.root .. "/" .. n) end
    end
    if self.r.checkpoint.every > 0 then self:check_writable() end
  end
  local want = self.r.checkpoint.resume
  if want == "none" then return nil end
  local candidates
  if want == "auto" then
    candidates = M.list(self.root)
  else
    if not sys.is_dir(want) then
      error(("checkpoint.resume = %q is not a directory; give a checkpoint directory (step-NNNNNNNN), \"auto\" or \"none\"")
        :format(want), 0)
    end
    candidates = { { name = want, path = want, explicit = true } }
  end
  for _, c in ipairs(candidates) do
    local meta, why = M.read_meta(c.path)
    if meta then
      local diff = model_mismatch(meta, self.r)
      if diff then
        error(("checkpoint %s was saved by a different model (%s); point checkpoint.dir elsewhere or set checkpoint.resume = \"none\"")
          :format(c.path, diff), 0)
      end
      local ok, msg, code = self.e:state_load(c.path, file_records(meta))
      if ok then
        local changes = continuity_changes(meta, self.r)
        if #changes > 0 then
          self.warn(("resuming %s with another data order (%s): the steps after it differ from the saved run's")
            :format(c.path, table.concat(changes, ", ")))
        end
        self.saved_step = self.e:get_step()
        self.say(("resumed from %s at step %d (saved by %d rank%s, ZeRO stage %d)"):format(c.path, self.saved_step,
          meta.world_size, meta.world_size == 1 and "" or "s", meta.zero_stage))
        return self.saved_step
      end
      if code ~= engine_mod.STATUS_FORMAT and code ~= engine_mod.STATUS_IO then error(msg, 0) end
      why = msg
    end
    if c.explicit then error(("cannot resume from %s: %s"):format(c.path, why), 0) end
    self.warn(("skipping checkpoint %s: %s"):format(c.path, why))
  end
  if #candidates > 0 then self.say(("no valid checkpoint in %s: starting at step 0"):format(self.root)) end
  return nil
end

local function meta_of(self, step, files)
  local r, e = self.r, self.e
  local out = {}
  for i, f in ipairs(files) do out[i] = { name = f.name, bytes = f.bytes, crc32c = ("%08x"):format(f.crc32c) } end
  local model = {}
  for _, k in ipairs(MODEL_KEYS) do model[k] = r.model[k] end
  model.name = r.model.name
  return {
    format = M.FORMAT, version = M.VERSION, moonspeed = engine_mod.version(),
    step = step, world_size = e:world_size(), zero_stage = r.zero.stage, precision = r.precision,
    saved_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    model = model,
    -- the data position and every random draw are functions of (seed, step):
    -- the loader picks window (seed, step, sequence) and init draws (seed, tensor, element)
    data = { train = r.data.train, sequences_seen = step * r.train.batch, tokens_seen = step * r.train.batch * r.train.seq_len },
    rng = { generator = "philox4x32-10", seed = r.train.seed, counter = step },
    schedule = { kind = r.train.schedule, lr = r.train.lr, min_lr = r.train.min_lr, warmup = r.train.warmup, steps = r.train.steps },
    files = out,
    recipe = self.recipe_text,
  }
end

local META_ORDER = { "format", "version", "moonspeed", "step", "world_size", "zero_stage", "precision", "saved_at",
  "model", "data", "rng", "schedule", "files", "recipe" }

-- Removes a checkpoint: first renamed out of sight in one step, so that a
-- crash halfway through the removal never leaves a damaged one under its name.
function Policy:discard(name)
  local trash = ("%s/.trash-%s"):format(self.root, name)
  engine_mod.remove_tree(trash)
  local ok, err = os.rename(self.root .. "/" .. name, trash)
  if not ok then error(("checkpoint: cannot remove %s/%s: %s"):format(self.root, name, err), 0) end
  engine_mod.remove_tree(trash)
end

-- Rank 0 puts a written checkpoint in place: meta.json, rename, latest, prune.
function Policy:commit(p, files)
  self.saved_step = p.step
  if not self.lead then return end
  engine_mod.write_atomic(p.tmp .. "/meta.json", json.encode(meta_of(self, p.step, files), META_ORDER) .. "\n")
  local keep = { ["meta.json"] = true }
  for _, f in ipairs(files) do keep[f.name] = true end
  for _, n in ipairs(sys.list_dir(p.tmp)) do -- leftovers of an interrupted save of another world
    if not keep[n] then os.remove(p.tmp .. "/" .. n) end
  end
  engine_mod.fsync_dir(p.tmp)
  if sys.exists(p.final) then self:discard(name_of(p.step)) end -- saved again at a step (after a resume)
  local ok, err = os.rename(p.tmp, p.final)
  if not ok then error(("checkpoint: cannot rename %s to %s: %s"):format(p.tmp, p.final, err), 0) end
  engine_mod.fsync_dir(self.root)
  engine_mod.write_atomic(self.root .. "/latest", name_of(p.step) .. "\n")
  local all = M.list(self.root)
  for i = self.r.checkpoint.keep + 1, #all do self:discard(all[i].name) end
  engine_mod.fsync_dir(self.root)
  self.say(("checkpoint %s written (%d file%s)"):format(p.final, #files, #files == 1 and "" or "s"))
end

-- Finishes the save in flight: block = wait for it; else only when every
-- rank's writer is done. Returns true when none is left in flight.
function Policy:finish(block)
  local p = self.pending
  if not p then return true end
  local ok, done, files = pcall(self.e.state_wait, self.e, block)
  if not ok then -- a rank could not write: nothing half-written stays behind
    self.pending = nil
    if self.lead then engine_mod.remove_tree(p.tmp) end
    error(("checkpoint %s could not be written: %s; %s"):format(p.final, tostring(done):gsub("^ms_engine_state_wait failed: ", ""),
      self.saved_step and ("the checkpoint of step %d is intact"):format(self.saved_step) or "no earlier checkpoint exists"), 0)
  end
  if not done then return false end
  self.pending = nil
  self:commit(p, files)
  return true
end

-- Starts a checkpoint of the engine's current step (finishing any earlier one).
function Policy:save(async)
  self:finish(true)
  local step = self.e:get_step()
  local p = { step = step, tmp = ("%s/.tmp-%s"):format(self.root, name_of(step)), final = self.root .. "/" .. name_of(step) }
  local ok, err = sys.mkdir_p(p.tmp)
  if not ok then error(("checkpoint: %s"):format(err), 0) end
  self.e:state_save(p.tmp, async)
  self.pending = p
  if not async then self:finish(true) end
end

-- The control run between steps (train.lua): a periodic save, a requested
-- one, or a final one before a requested stop; async saves complete here.
function Policy:control()
  return function(t)
    local c = self.r.checkpoint
    self:finish(false)
    local due = c.every > 0 and t.step % c.every == 0
    if t.requests.stop or t.requests.checkpoint or due then
      if self.saved_step ~= t.step and not (self.pending and self.pending.step == t.step) then
        self:save(c.async and not t.requests.stop)
      end
    end
    if t.requests.stop then self:finish(true) end
  end
end

-- At the end of training: a last checkpoint when saving periodically, and
-- every save completed.
function Policy:close()
  if self.r.checkpoint.every > 0 and self.saved_step ~= self.e:get_step()
    and not (self.pending and self.pending.step == self.e:get_step()) then
    self:save(false)
  end
  self:finish(true)
end

return M
