#!/usr/bin/env python3
"""spec/peers/hf_reference.py — an exported model's logits by Hugging Face's Llama definition, in plain Python.

For machines without PyTorch: reads a directory written by `moonspeed export --dtype fp32`
(config.json, the index and its safetensors shards) with nothing but the standard library,
runs the forward pass exactly as transformers' modeling_llama.py defines it (RMSNorm, q/k/v
projections, RoPE by rotate_half with inv_freq = 1/theta^(2i/head_dim), grouped-query causal
attention, SwiGLU, final norm, tied or separate lm_head), and compares its logits with
`moonspeed logits RUN_DIR` on the same tokens. A small model only (it is slow: pure Python).

    python3 spec/peers/hf_reference.py RUN_DIR HF_DIR [MOONSPEED]

Prints the error (max |moonspeed - reference| / max |reference|); exits 1 above 1e-4.
hf_compare.py is the comparison against transformers itself.
"""
import json
import math
import struct
import subprocess
import sys

TOKENS = [256, 73, 110, 32, 116, 104, 101, 32, 98, 101, 103, 105, 110, 110, 105, 110, 103]


def main(run, hf, exe="build/moonspeed"):
    cfg = json.load(open(hf + "/config.json"))
    index = json.load(open(hf + "/model.safetensors.index.json"))
    files = {}

    def tensor(name):
        fn = index["weight_map"][name]
        if fn not in files:
            b = open(hf + "/" + fn, "rb").read()
            n = struct.unpack("<Q", b[:8])[0]
            files[fn] = (json.loads(b[8:8 + n]), b[8 + n:])
        header, data = files[fn]
        e = header[name]
        if e["dtype"] != "F32":
            raise SystemExit(f"{name} is {e['dtype']}: export with --dtype fp32")
        lo, hi = e["data_offsets"]
        vals = struct.unpack("<%df" % ((hi - lo) // 4), data[lo:hi])
        if len(e["shape"]) == 1:
            return list(vals)
        rows, cols = e["shape"]
        return [vals[i * cols:(i + 1) * cols] for i in range(rows)]

    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps, theta = D // H, cfg["rms_norm_eps"], cfg["rope_theta"]
    inv_freq = [1.0 / (theta ** (2 * i / hd)) for i in range(hd // 2)]

    def linear(W, x):
        return [sum(w * v for w, v in zip(row, x)) for row in W]

    def rmsnorm(x, g):
        r = 1 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
        return [v * r * w for v, w in zip(x, g)]

    def rope(x, pos):  # rotate_half: element i pairs with i + hd/2
        out = list(x)
        for b in range(0, len(x), hd):
            for i in range(hd // 2):
                c, s = math.cos(pos * inv_freq[i]), math.sin(pos * inv_freq[i])
                x1, x2 = x[b + i], x[b + i + hd // 2]
                out[b + i], out[b + i + hd // 2] = x1 * c - x2 * s, x2 * c + x1 * s
        return out

    E = tensor("model.embed_tokens.weight")
    xs = [list(E[t]) for t in TOKENS]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        W = {k: tensor(p + k + ".weight") for k in (
            "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")}
        xn = [rmsnorm(x, W["input_layernorm"]) for x in xs]
        q = [rope(linear(W["self_attn.q_proj"], x), t) for t, x in enumerate(xn)]
        k = [rope(linear(W["self_attn.k_proj"], x), t) for t, x in enumerate(xn)]
        v = [linear(W["self_attn.v_proj"], x) for x in xn]
        for t in range(len(xs)):
            o = []
            for h in range(H):
                g = h // (H // KV)
                sc = [sum(q[t][h * hd + i] * k[s][g * hd + i] for i in range(hd)) / math.sqrt(hd)
                      for s in range(t + 1)]
                m = max(sc)
                ex = [math.exp(z - m) for z in sc]
                o += [sum(ex[s] * v[s][g * hd + i] for s in range(t + 1)) / sum(ex) for i in range(hd)]
            xs[t] = [a + b for a, b in zip(xs[t], linear(W["self_attn.o_proj"], o))]
        for t, x in enumerate(xs):
            y = rmsnorm(x, W["post_attention_layernorm"])
            h = [a / (1 + math.exp(-a)) * b for a, b in zip(linear(W["mlp.gate_proj"], y), linear(W["mlp.up_proj"], y))]
            xs[t] = [a + b for a, b in zip(x, linear(W["mlp.down_proj"], h))]
    head = E if cfg["tie_word_embeddings"] else tensor("lm_head.weight")
    ref = [linear(head, rmsnorm(x, tensor("model.norm.weight"))) for x in xs]

    out = subprocess.run([exe, "logits", run, "--tokens", ",".join(map(str, TOKENS))], capture_output=True,
                         text=True, check=True).stdout
    ms = json.loads(out.strip().splitlines()[-1])["logits"]
    diff = max(abs(a - b) for r1, r2 in zip(ms, ref) for a, b in zip(r1, r2))
    scale = max(abs(b) for r in ref for b in r)
    print(f"{len(TOKENS)} tokens: max |Δ| {diff:.3e}, max |logit| {scale:.4g}, relative error {diff / scale:.3e}")
    return 0 if diff / scale <= 1e-4 else 1


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip().split("\n\n")[2], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
