"""Tuning throughput through TVM's RPC tracker with one server, then with two.

    .venv/bin/python benchmarks/rpc_farm.py [--spec SPEC] [--trials 24] [--out bench-farm]

Starts a tracker and N servers on localhost (server i pinned to core i, one thread each),
tunes SPEC from scratch with ``gta tune --rpc`` into a fresh record store, and prints
trials per minute for N = 1 and N = 2, side by side. On a 2-core host the servers share
the cores with the builds, so the second server shows what the farm's parallel runs buy
when building is not the bottleneck only in part; on separate machines builds stay here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gta_core.bench.run import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import RPCFarm  # noqa: E402 - the same localhost farm the tests start


def tune_through(servers: int, spec: str, trials: int, out: Path) -> dict:
    db = out / f"db-{servers}"
    shutil.rmtree(db, ignore_errors=True)
    farm = RPCFarm(servers, key=f"farm-{servers}", pin=True)
    try:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gta_core.cli", "tune", spec, "--target",
                               "avx512", "--trials", str(trials), "--db", str(db), "--rpc",
                               farm.rpc, "--quiet", "--json"],
                              capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
    finally:
        farm.stop()
    task = json.loads(done.stdout)["tasks"][0]
    return {"servers": servers, "trials": task["trials"], "seconds": round(seconds, 1),
            "trials_per_minute": round(60 * task["trials"] / seconds, 1),
            "best_us": task["latency_us"], "correct": task["correct"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="conv2d:N=1,C=64,H=28,W=28,K=64,R=3,S=3,pad=1,"
                                           "dtype=int8")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--out", default="bench-farm")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [tune_through(n, args.spec, args.trials, out) for n in (1, 2)]
    result = {"host": machine(), "spec": args.spec,
              "runs": rows}
    (out / "farm.json").write_text(json.dumps(result, indent=1))
    for row in rows:
        print(f"{row['servers']} server(s): {row['trials']} trials in {row['seconds']} s = "
              f"{row['trials_per_minute']} trials/min; best {row['best_us']:.1f} us "
              f"(correct: {row['correct']})")


if __name__ == "__main__":
    main()
