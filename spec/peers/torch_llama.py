"""spec/peers/torch_llama.py — the PyTorch program a user would run instead of moonspeed.

Hugging Face LlamaForCausalLM built from the same config (Llama-3.2-1B shape by
default: 16 layers, d 2048, 32 heads, 8 KV heads, ffn 8192, vocab 128256, tied
embeddings), fp32 parameters, bf16 autocast, SDPA attention, fused AdamW, one
sequence of T tokens a step. Prints tokens/s of the median step; --compile
runs it under torch.compile (no checkpointing in this first slice).

    python3 spec/peers/torch_llama.py [--seq 4096] [--steps 5] [--compile]
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
    a = ap.parse_args()
    cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                      num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=a.seq,
                      rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                      attn_implementation="sdpa")
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    fwd = torch.compile(model) if a.compile else model
    x = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device="cuda")
    times = []
    for i in range(a.warmup + a.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
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
    print(f"BENCH torch peer ({mode}, bf16 autocast, fused AdamW, sdpa): {n} params, B={a.batch} T={a.seq}: "
          f"{dt * 1e3:.1f} ms/step, {a.batch * a.seq / dt:.0f} tokens/s (loss {loss.item():.4f}), "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, torch {torch.__version__}")


if __name__ == "__main__":
    main()
