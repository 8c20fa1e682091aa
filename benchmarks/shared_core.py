"""A compiled model beside onnxruntime, alone and with one core shared by a busy process:
how much each slows when a neighbour takes part of a core (the host's "slow spells").

    .venv/bin/python benchmarks/shared_core.py MODEL.so MODEL.onnx 1x3x224x224 [--rounds 9]

``MODEL.so`` is ``gta compile --model MODEL.onnx``'s output. Both run in this process, in
alternating samples (``gta_core.bench.net_runners.sample_us``), onnxruntime on 2 intra-op
threads with its idle workers not spinning, as ``gta bench`` times it: first alone, then
beside a process spinning on the second core, then alone again. TVM's runtime reads its
thread settings from the environment (``TVM_THREAD_POOL_SPIN_COUNT``, ``TVM_BIND_THREADS``),
so each setting is one run of this script under it. Both outputs are checked against each
other before anything is timed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("onnx")
    parser.add_argument("shape", help="the input's shape, e.g. 1x3x224x224")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    import onnxruntime as ort
    import tvm
    from tvm import relax

    from gta_core.bench.net_runners import sample_us

    x = np.random.default_rng(0).standard_normal(
        [int(d) for d in args.shape.split("x")]).astype("float32")
    vm = relax.VirtualMachine(tvm.runtime.load_module(args.library), tvm.cpu())
    data = tvm.runtime.tensor(x)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runs = {"gta": lambda: vm["main"](data), "onnxruntime": lambda: session.run(None, {name: x})}
    gta_out = runs["gta"]()
    gta_out = (gta_out[0] if isinstance(gta_out, (list, tuple)) else gta_out).numpy()
    np.testing.assert_allclose(gta_out, runs["onnxruntime"]()[0], rtol=1e-3, atol=1e-3)

    def medians() -> dict[str, float]:
        samples: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.rounds):
            for key, run in runs.items():
                samples[key].append(sample_us(run) / 1e3)
        return {key: statistics.median(v) for key, v in samples.items()}

    for run in runs.values():  # warm up
        run()
    alone = medians()
    busy = subprocess.Popen([sys.executable, "-c",
                             "import os\nos.sched_setaffinity(0, {1})\nwhile True: pass"])
    time.sleep(1)
    try:
        shared = medians()
    finally:
        busy.kill()
    again = medians()
    for label, m in (("alone", alone), ("one core shared", shared), ("alone again", again)):
        print(f"{label:16s} gta {m['gta']:.2f} ms  onnxruntime {m['onnxruntime']:.2f} ms  "
              f"gta speedup {m['onnxruntime'] / m['gta']:.2f}x")
    print("slowdown with one core shared: gta %.2fx, onnxruntime %.2fx"
          % (shared["gta"] / alone["gta"], shared["onnxruntime"] / alone["onnxruntime"]))


if __name__ == "__main__":
    main()
