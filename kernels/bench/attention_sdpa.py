"""kernels/bench/attention_sdpa.py — torch's scaled_dot_product_attention on the
shapes of kernels/bench/attention.c, timed the same way (CUDA events, median of
10 after 3 warm-ups, fresh random bf16 inputs, causal), for the ratio.

    python3 kernels/bench/attention_sdpa.py
"""
import statistics

import torch
import torch.nn.functional as F

SHAPES = [(1, 8192, 32, 32, 128), (1, 4096, 32, 32, 128), (1, 4096, 32, 8, 64)]


def timed(fn):
    times = []
    for i in range(13):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    for B, T, H, KV, hd in SHAPES:
        # (B, heads, T, hd) views of (B, T, heads, hd) tensors, as the engine lays them out
        q = (torch.rand(B, T, H, hd, device="cuda") * 4 - 2).bfloat16().transpose(1, 2).requires_grad_()
        k = (torch.rand(B, T, KV, hd, device="cuda") * 4 - 2).bfloat16().transpose(1, 2).requires_grad_()
        v = (torch.rand(B, T, KV, hd, device="cuda") * 2 - 1).bfloat16().transpose(1, 2).requires_grad_()
        g = (torch.rand(B, H, T, hd, device="cuda") * 2 - 1).bfloat16()
        gqa = KV != H
        fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        out = fwd()
        tf = timed(fwd)
        tb = timed(lambda: torch.autograd.grad(out, (q, k, v), g, retain_graph=True))
        f = 4.0 * B * H * T * T / 2 * hd
        print(f"BENCH sdpa B={B} T={T} H={H} KV={KV} hd={hd}: fwd {tf:.3f} ms {f / tf / 1e9:.0f} TFLOP/s, "
              f"bwd {tb:.3f} ms {2.5 * f / tb / 1e9:.0f} TFLOP/s (torch {torch.__version__})", flush=True)


if __name__ == "__main__":
    main()
