#!/usr/bin/env python3
"""spec/peers/hf_compare.py — moonspeed's Hugging Face export and import against transformers.

Needs PyTorch and transformers (and safetensors, which transformers brings). From the
repository root, after `make` (and nothing else: the script makes its own data):

    python3 spec/peers/hf_compare.py

options: --moonspeed PATH (default build/moonspeed), --keep DIR (write everything there and
keep it; default a temporary directory that is removed), --tokens N (default 48).

What it checks, each on the same tokens, with logits compared in fp32:
  (a) export: a tiny moonspeed model, trained for a few steps on generated text (so its norms
      are no longer 1), is written by `moonspeed export RUN --hf DIR` and loaded with
      LlamaForCausalLM.from_pretrained; its logits are compared with `moonspeed logits RUN`.
      Tied and untied heads, grouped-query attention, rope_theta 10000 and 500000; fp32 exports,
      and a bf16 export against moonspeed importing that same bf16 export.
  (b) import: LlamaForCausalLM with random weights (norms perturbed too), tied and untied, is
      written by save_pretrained and imported by moonspeed through init.from; its logits are
      compared with transformers' own.
The error of a case is max |moonspeed - transformers| / max |transformers| over every position
and vocabulary entry; a case passes at <= 1e-4. Prints a table; exits 1 when a case fails,
2 when PyTorch or transformers is missing.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

LIMIT = 1e-4

try:
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"hf_compare: needs PyTorch and transformers ({e}); run it where both are installed", file=sys.stderr)
    sys.exit(2)


def sh(args, what):
    """Runs a command; its stdout, or a failure naming the command and its stderr."""
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {res.returncode}): {' '.join(args)}\n{res.stderr}{res.stdout}")
    return res.stdout


def recipe_text(shape, data_dir, log_dir, steps=20):
    """A moonspeed recipe (Lua) for a model shape (the keys of the recipe's model section)."""
    model = ", ".join(f"{k} = {lua(v)}" for k, v in shape.items())
    return f"""-- written by spec/peers/hf_compare.py
return {{
  precision = "fp32",
  model = {{ name = "hf-compare", {model} }},
  train = {{ steps = {steps}, batch = 4, micro_batch = 4, seq_len = 64, lr = 1e-2, min_lr = 1e-3, warmup = 2,
            eval_every = 0, eval_batches = 1, seed = 7 }},
  data = {{ tokenizer = "bytes", train = {lua(data_dir + "/train.bin")}, val = {lua(data_dir + "/val.bin")} }},
  log = {{ sample_tokens = 0, dir = {lua(log_dir)} }},
}}
"""


def lua(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def moonspeed_logits(exe, target, tokens, overrides=()):
    out = sh([exe, "logits", target, "--tokens", ",".join(map(str, tokens)), *overrides], "moonspeed logits")
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return torch.tensor(json.loads(line)["logits"], dtype=torch.float32)


def hf_logits(model_dir, tokens):
    kw = {"attn_implementation": "eager"}
    try:
        model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kw)
    except TypeError:
        model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, **kw)
    model = model.float().eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([tokens])).logits[0].float()


def compare(ms, hf):
    if ms.shape != hf.shape:
        raise RuntimeError(f"logits of shape {tuple(ms.shape)} from moonspeed, {tuple(hf.shape)} from transformers")
    diff = (ms - hf).abs().max().item()
    scale = hf.abs().max().item()
    return diff, scale, diff / scale


def shape_name(s):
    return (f"d{s['dim']} L{s['n_layers']} h{s['n_heads']}/{s['n_kv_heads']} f{s['ffn_dim']} V{s['vocab_size']}"
            f" θ{s['rope_theta']:g}{' tied' if s['tie_embeddings'] else ''}")


BASE = dict(vocab_size=258, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=160, max_seq_len=64,
            tie_embeddings=True, rope_theta=10000, norm_eps=1e-5, init_std=0.05)


def export_cases(exe, root, tokens):
    """(a) moonspeed trains and exports; transformers loads."""
    data = os.path.join(root, "data")
    os.makedirs(data, exist_ok=True)
    rng = random.Random(3)
    words = ["the", "light", "and", "darkness", "waters", "firmament", "seed", "after", "his", "kind", "God", "said"]
    text = "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(20000))
    with open(os.path.join(data, "text.txt"), "w") as f:
        f.write(text)
    sh([exe, "prepare-bytes", os.path.join(data, "text.txt"), "--out", data], "moonspeed prepare-bytes")
    shapes = [
        ("trained, tied", dict(BASE)),
        ("trained, untied, θ 500000", dict(BASE, tie_embeddings=False, rope_theta=500000, n_kv_heads=1)),
    ]
    rows = []
    for i, (name, shape) in enumerate(shapes):
        recipe = os.path.join(root, f"export{i}.lua")
        with open(recipe, "w") as f:
            f.write(recipe_text(shape, data, os.path.join(root, "runs")))
        run = os.path.join(root, f"run{i}")
        sh([exe, "run", recipe, "--run-dir", run], "moonspeed run")
        ms = moonspeed_logits(exe, run, tokens)
        for dtype in ("fp32", "bf16"):
            out = os.path.join(root, f"export{i}-{dtype}")
            sh([exe, "export", run, "--hf", out, "--dtype", dtype], "moonspeed export")
            ref = ms
            if dtype == "bf16":  # moonspeed with the same bf16-rounded weights
                ref = moonspeed_logits(exe, recipe, tokens, [f"init.from={out}"])
            rows.append((f"export: {name}", dtype, shape_name(shape), *compare(ref, hf_logits(out, tokens))))
    return rows


def rope_theta_of(config):
    """rope_theta, from transformers 4's attribute or 5's rope_parameters."""
    rp = getattr(config, "rope_parameters", None)
    if isinstance(rp, dict) and "rope_theta" in rp:
        return rp["rope_theta"]
    return getattr(config, "rope_theta", None)


def import_cases(exe, root, tokens):
    """(b) transformers writes with save_pretrained; moonspeed imports."""
    rows = []
    shapes = [
        ("random, tied", dict(BASE, vocab_size=300)),
        ("random, untied, θ 500000, eps 1e-6", dict(BASE, vocab_size=300, tie_embeddings=False, rope_theta=500000,
                                                     norm_eps=1e-6, n_heads=8, n_kv_heads=2)),
    ]
    for i, (name, shape) in enumerate(shapes):
        torch.manual_seed(11 + i)
        config = LlamaConfig(vocab_size=shape["vocab_size"], hidden_size=shape["dim"],
                             intermediate_size=shape["ffn_dim"], num_hidden_layers=shape["n_layers"],
                             num_attention_heads=shape["n_heads"], num_key_value_heads=shape["n_kv_heads"],
                             max_position_embeddings=shape["max_seq_len"], rope_theta=shape["rope_theta"],
                             rms_norm_eps=shape["norm_eps"], tie_word_embeddings=shape["tie_embeddings"],
                             initializer_range=0.05, bos_token_id=256, eos_token_id=257)
        if rope_theta_of(config) != shape["rope_theta"]:
            raise RuntimeError(f"LlamaConfig(rope_theta={shape['rope_theta']}) gave rope_theta "
                               f"{rope_theta_of(config)}; this transformers spells it differently")
        model = LlamaForCausalLM(config).float().eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "norm" in pname:  # random init leaves norms at 1: make their mapping visible
                    p.copy_(1 + 0.3 * torch.randn_like(p))
        out = os.path.join(root, f"import{i}")
        try:
            model.save_pretrained(out, safe_serialization=True)
        except TypeError:
            model.save_pretrained(out)
        recipe = os.path.join(root, f"import{i}.lua")
        with open(recipe, "w") as f:
            f.write(recipe_text(shape, os.path.join(root, "data"), os.path.join(root, "runs")))
        ms = moonspeed_logits(exe, recipe, tokens, [f"init.from={out}"])
        with torch.no_grad():
            hf = model(input_ids=torch.tensor([tokens])).logits[0].float()
        rows.append((f"import: {name}", "fp32", shape_name(shape), *compare(ms, hf)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moonspeed", default="build/moonspeed")
    ap.add_argument("--keep", help="write everything into this directory and keep it")
    ap.add_argument("--tokens", type=int, default=48)
    args = ap.parse_args()
    exe = os.path.abspath(args.moonspeed)
    if not os.path.exists(exe):
        print(f"hf_compare: {exe} does not exist; run `make` first (or pass --moonspeed)", file=sys.stderr)
        return 2
    root = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="hf-compare-")
    os.makedirs(root, exist_ok=True)
    rng = random.Random(5)
    tokens = [256] + [rng.randrange(256) for _ in range(min(args.tokens, 64) - 1)]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    print(f"moonspeed: {sh([exe, 'version'], 'moonspeed version').strip()}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}; {len(tokens)} tokens; files in {root}")
    try:
        rows = export_cases(exe, root, tokens) + import_cases(exe, root, tokens)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    head = ("case", "weights", "shape", "max |Δ|", "max |logit|", "rel. error", "")
    table = [head] + [(c, w, s, f"{d:.3e}", f"{m:.4g}", f"{r:.3e}", "ok" if r <= LIMIT else "FAIL")
                      for c, w, s, d, m, r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  ".join(x.ljust(widths[i]) for i, x in enumerate(r)).rstrip())
    failed = [r for r in rows if not r[5] <= LIMIT]
    print(f"{len(rows) - len(failed)} of {len(rows)} cases within {LIMIT:g} relative error")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
