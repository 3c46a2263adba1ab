-- recipes/experiments/kjv-sweep.lua — an experiment: one base, several variants.
--
-- sweep(base, spec) returns the variants instead of one recipe. grid() takes
-- every combination (here 2 learning rates x 2 ZeRO stages = 4 variants), zip()
-- pairs values up; each variant is named after its values (lr1e-3-stage2).
--   moonspeed run recipes/experiments/kjv-sweep.lua --list      the variants
--   moonspeed run recipes/experiments/kjv-sweep.lua --only 3    one of them
--   moonspeed launch --nproc-per-node 2 recipes/experiments/kjv-sweep.lua
--                                                                all, on two ranks, then a table
-- Overrides apply to every variant (train.steps=50), except the keys it varies.
return sweep("../default.lua", grid(
  { ["train.lr"] = { 1e-3, 3e-3 } },
  { ["zero.stage"] = { 2, 3 } }
))
