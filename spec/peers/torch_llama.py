"""spec/peers/torch_llama.py — the PyTorch program a user would run instead of moonspeed.

Hugging Face LlamaForCausalLM built from the same config (--shape 1b, the
default: Llama-3.2-1B, 16 layers, d 2048, 32 heads, 8 KV heads, ffn 8192, vocab
128256, tied embeddings; --shape 8b: Llama-3-8B, 32 layers, d 4096, ffn 14336,
untied), SDPA attention, fused AdamW, B sequences of T tokens a step: fp32
parameters under bf16 autocast, or with --pure-bf16 bf16 parameters, gradients
and optimizer state (what fits an 8B model on one GPU without offload).
Prints tokens/s of the median step; --compile runs it under torch.compile (no
checkpointing).

    python3 spec/peers/torch_llama.py [--shape 1b|8b] [--pure-bf16] [--seq 4096] [--steps 5] [--compile]
"""
import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--shape", choices=["1b", "8b"], default="1b")
    ap.add_argument("--pure-bf16", action="store_true", help="bf16 parameters and optimizer state, no autocast")
    a = ap.parse_args()
    shape = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, tie_word_embeddings=True) \
        if a.shape == "1b" else dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                     tie_word_embeddings=False)
    cfg = LlamaConfig(vocab_size=128256, num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=a.seq,
                      rope_theta=500000.0, rms_norm_eps=1e-5, attn_implementation="sdpa", **shape)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if a.pure_bf16 else torch.float32
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(dtype)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    fwd = torch.compile(model) if a.compile else model
    x = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device="cuda")
    times = []
    for i in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not a.pure_bf16):
            loss = fwd(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    n = sum(p.numel() for p in model.parameters())
    mode = "compiled" if a.compile else "eager"
    prec = "pure bf16" if a.pure_bf16 else "bf16 autocast"
    print(f"BENCH torch peer {a.shape} ({mode}, {prec}, fused AdamW, sdpa): {n} params, B={a.batch} T={a.seq}: "
          f"{dt * 1e3:.1f} ms/step, {a.batch * a.seq / dt:.0f} tokens/s (loss {loss.item():.4f}), "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, torch {torch.__version__}")


if __name__ == "__main__":
    main()
