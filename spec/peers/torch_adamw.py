"""spec/peers/torch_adamw.py — the CPU AdamW a PyTorch user would run for optimizer
offload: torch.optim.AdamW(fused=True) on fp32 CPU tensors, timed like
kernels/bench/adamw.c (2 warm-up steps, median of ITERS, fresh random values).

Two layouts of the same parameter count: one flat tensor of N, and the tensors
of one Llama-3-8B block (q and o 4096x4096, k and v 1024x4096, gate and up
14336x4096, down 4096x14336, two norms of 4096: 218,112,000 parameters). When
fused is unavailable it falls back to foreach, then the for-loop, and says so.

    python3 spec/peers/torch_adamw.py [--n N] [--threads T] [--iters I]

Prints a "BENCH torch ..." line per layout and "RESULT torch <impl> <layout>
<params/s>" lines for kernels/bench/adamw_run.sh. Bytes counted as for ours:
28 per parameter (param, exp_avg, exp_avg_sq read and written, grad read).
"""
import argparse
import os
import statistics
import time

import torch

BLOCK = [(4096, 4096), (1024, 4096), (1024, 4096), (4096, 4096), (14336, 4096), (14336, 4096),
         (4096, 14336), (4096,), (4096,)]


def make(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.nn.Parameter(torch.rand(s, generator=g) * 2 - 1)
        p.grad = (torch.rand(s, generator=g) * 2 - 1) * 1e-2
        params.append(p)
    return params


def optimizer(params):
    """fused, else foreach, else the for-loop; returns (optimizer, name)"""
    kw = dict(lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    for impl, extra in (("fused", dict(fused=True)), ("foreach", dict(foreach=True)), ("for-loop", dict(foreach=False))):
        try:
            opt = torch.optim.AdamW(params, **kw, **extra)
            opt.step()  # the first step builds the state; fails here when the impl is missing
            return opt, impl
        except (RuntimeError, TypeError, ValueError) as e:
            note = f"{impl} AdamW unavailable on CPU here ({str(e).splitlines()[0][:120]})"
            print("NOTE torch:", note, flush=True)
    raise SystemExit("torch_adamw: no AdamW implementation ran")


def bench(name, shapes, threads, iters):
    params = make(shapes, 1)
    n = sum(p.numel() for p in params)
    opt, impl = optimizer(params)
    for _ in range(2):
        opt.step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    rate = n / sec
    print(f"BENCH torch adamw {impl:8s} {name:5s} N={n} T={threads}: {sec * 1e3:8.2f} ms (median of {iters}), "
          f"{rate * 1e-9:6.3f} G params/s, {rate * 28e-9:6.1f} GB/s", flush=True)
    print(f"RESULT torch {impl} {name} {rate:.6g}", flush=True)
    del opt, params


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=218112000, help="parameters of the flat layout")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=7)
    ap.add_argument("--layouts", default="flat,block")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}", flush=True)
    for layout in a.layouts.split(","):
        bench(layout, [(a.n,)] if layout == "flat" else BLOCK, a.threads, a.iters)


if __name__ == "__main__":
    main()
