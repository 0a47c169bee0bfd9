"""oneDNN's per-shape kernel caches: memory growth and time with the default capacity vs agentkd's bound.

    python benchmarks/onednn_cache.py                # SmolLM2-135M's projection shapes, 600 input shapes
    python benchmarks/onednn_cache.py --shapes 1200

Replay and training feed the model a new input shape on almost every call (batch rows x new tokens).
On the CPU, oneDNN compiles a kernel and scratchpad per shape and keeps 1,024 of them
(``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, ideep's ``LRU_CACHE_CAPACITY``); agentkd bounds both
(:func:`agentkd.models.student.bound_cpu_kernel_caches`). Each capacity runs in its own process (the
setting is read once per process), side by side in one run. The layers are SmolLM2-135M's seven
projections: in oneDNN's own layout (float32, so the oneDNN path runs on any x86 CPU) and, on CPUs
with native bf16 (AMX / AVX512-BF16), also as plain bf16 ``Linear`` layers, the path replay takes there.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

#: (in, out) of SmolLM2-135M's q, k, v, o, gate, up and down projections.
PROJECTIONS = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def child(mode: str, shapes: int) -> None:
    """Runs the layers on inputs of ``shapes`` different row counts; prints one JSON line."""
    import time

    import torch
    from torch.utils import mkldnn

    torch.manual_seed(0)
    layers = torch.nn.ModuleList(torch.nn.Linear(i, o) for i, o in PROJECTIONS).eval()
    if mode == "bf16":
        layers = layers.to(torch.bfloat16)
    else:
        layers = mkldnn.to_mkldnn(layers)
    before = _rss_mb()
    started = time.perf_counter()
    with torch.inference_mode():
        for rows in range(1, shapes + 1):
            for (width, _), layer in zip(PROJECTIONS, layers, strict=True):
                x = torch.randn(rows, width)
                layer(x.to(torch.bfloat16) if mode == "bf16" else x.to_mkldnn())
    print(json.dumps({"growth_mb": round(_rss_mb() - before), "seconds": round(time.perf_counter() - started, 2)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", type=int, default=600)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.shapes)
        return 0

    from agentkd.models.student import CPU_KERNEL_CACHE_CAPACITY, cpu_has_fast_bf16

    modes = ["mkldnn-fp32"] + (["bf16"] if cpu_has_fast_bf16() else [])
    for mode in modes:
        row = {}
        for capacity in (1024, CPU_KERNEL_CACHE_CAPACITY):
            env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(capacity), "LRU_CACHE_CAPACITY": str(capacity)}
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--shapes", str(args.shapes)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            row[capacity] = json.loads(out.strip().splitlines()[-1])
        default, bounded = row[1024], row[CPU_KERNEL_CACHE_CAPACITY]
        print(f"{mode}: {args.shapes} input shapes x {len(PROJECTIONS)} projections | memory growth: "
              f"capacity 1024 {default['growth_mb']} MB, capacity {CPU_KERNEL_CACHE_CAPACITY} "
              f"{bounded['growth_mb']} MB | time: {default['seconds']} s vs {bounded['seconds']} s "
              f"({bounded['seconds'] / max(default['seconds'], 1e-9):.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
