"""Put `gta peak` beside what libraries reach on the same machine, in one run.

    .venv/bin/python benchmarks/peak_context.py [--repeat 5] [--json]

Measures, side by side: each avx512 intrinsic's peak (`gta peak`); PyTorch's
GEMM throughput (int8 through torch._int_mm, fp32 and bf16 matmul; needs the
`bench` extra); numpy's fp32 GEMM; and the untuned realised VNNI GEMM of each
kept mapping. Every GEMM output is checked against a reference before its
time counts. Medians of repeats; the spread is (max - min) / median.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import gta_core  # noqa: F401 - sets TVM_NUM_THREADS before TVM starts
from gta_core import api


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return median, (max(times) - min(times)) / median


def torch_rows(n: int, repeat: int) -> list[dict]:
    try:
        import torch
    except ImportError:
        return [{"contender": "torch", "note": "not installed (pip install '.[bench]')"}]
    rows = []
    rng = np.random.default_rng(0)
    a8 = rng.integers(-128, 128, (n, n), dtype=np.int8)
    b8 = rng.integers(-128, 128, (n, n), dtype=np.int8)
    ta, tb = torch.from_numpy(a8), torch.from_numpy(b8)
    out = torch._int_mm(ta, tb).numpy()
    ok = np.array_equal(out, a8.astype(np.int64) @ b8.astype(np.int64))
    median, spread = timed(lambda: torch._int_mm(ta, tb), repeat)
    rows.append({"contender": "torch._int_mm s8 x s8", "gops": 2 * n**3 / median / 1e9,
                 "spread": spread, "correct": ok})
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        x = torch.rand(n, n, dtype=torch.float32).to(dtype)
        y = torch.rand(n, n, dtype=torch.float32).to(dtype)
        ref = x.double() @ y.double()
        ok = bool(torch.allclose((x @ y).double(), ref, rtol=2e-2 if name == "bf16" else 1e-4))
        median, spread = timed(lambda x=x, y=y: x @ y, repeat)
        rows.append({"contender": f"torch matmul {name}", "gops": 2 * n**3 / median / 1e9,
                     "spread": spread, "correct": ok})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024, help="library GEMM size n (n^3)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    peaks = api.peak("avx512")
    rows = [{"contender": f"gta peak {p.intrinsic}", "gops": p.measurement.gops,
             "spread": p.measurement.spread, "correct": True}
            for p in peaks.peaks if p.measurement]
    rows += torch_rows(args.size, args.repeat)
    n = args.size
    a = np.random.default_rng(1).random((n, n), dtype=np.float32)
    b = np.random.default_rng(2).random((n, n), dtype=np.float32)
    ok = np.allclose(a @ b, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4)
    median, spread = timed(lambda: a @ b, args.repeat)
    rows.append({"contender": "numpy matmul fp32", "gops": 2 * n**3 / median / 1e9,
                 "spread": spread, "correct": ok})
    report = api.mappings("gemm:M=512,N=512,K=512,dtype=int8", "avx512", check=True)
    for m in report.mappings:
        rows.append({"contender": f"gta untuned {m.id} (512^3 int8)", "gops": m.gops,
                     "spread": None, "correct": m.checked})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        if "gops" not in row:
            print(f"{row['contender']:48} {row['note']}")
            continue
        spread = f"{row['spread']:.1%}" if row["spread"] is not None else "-"
        print(f"{row['contender']:48} {row['gops']:9.1f} G/s  spread {spread:>6}  "
              f"correct={row['correct']}")


if __name__ == "__main__":
    main()
