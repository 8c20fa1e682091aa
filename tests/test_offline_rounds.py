"""Tuning measured elsewhere in rounds (``--measure-offline``), with a stand-in for the GPU.

No GPU here: the stand-in writes what ``benchmarks/gpu_check/run_on_gpu.py`` writes after it
checked and timed a round (one output wrong, one kernel that failed to compile, the rest
timed); the round's manifest is validated by that script's ``--dry-run`` (numpy alone), as
the GPU would read it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gta_core.database import RecordStore
from gta_core.measure import MeasureSettings
from gta_core.measure.offline import RESULTS, RoundWritten
from gta_core.tuning import TuneError, tune

SPEC = "gemm:M=128,N=128,K=128,dtype=float16"
RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check" / "run_on_gpu.py"


def _round(db: Path, rounds: Path, trials: int):
    """One ``gta tune --measure-offline`` run: the round it wrote, or its report."""
    try:
        return tune([SPEC], "cuda-tc", trials, db, measure=MeasureSettings(offline=rounds))
    except RoundWritten as written:
        return written


def _stand_in(round_dir: Path) -> dict[str, float]:
    """Measure a round as the GPU script reports it; the latencies given to correct sets."""
    sets = json.loads((round_dir / "manifest.json").read_text())["kernel_sets"]
    results, timed = [], {}
    for i, kset in enumerate(sets):
        if i == 0:
            results.append({"id": kset["id"], "correct": False, "check": {"bad": 3}})
        elif i == 1:
            results.append({"id": kset["id"], "status": "compile_failed"})
        else:
            timed[kset["id"]] = 50.0 + i
            results.append({"id": kset["id"], "correct": True, "median_us": timed[kset["id"]]})
    (round_dir / RESULTS).write_text(json.dumps({"results": results}))
    return timed


def test_rounds_go_out_as_kernel_sets_and_come_back_as_records(tmp_path: Path) -> None:
    db, rounds, trials = tmp_path / "db", tmp_path / "rounds", 16
    first = _round(db, rounds, trials)
    assert isinstance(first, RoundWritten) and first.path == rounds / "round-1"
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert len(manifest["kernel_sets"]) == first.count >= 3
    for kset in manifest["kernel_sets"]:
        source = (first.path / kset["source"]).read_text()
        assert kset["launches"] and all(f" {launch['kernel']}(" in source
                                        for launch in kset["launches"])
        assert kset["task"] and kset["trace"] and kset["mapping"].startswith(("wmma", "mma"))
    dry = subprocess.run([sys.executable, str(RUNNER), "--kernels", str(first.path),
                          "--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "problems: none" in dry.stdout, dry.stdout + dry.stderr

    # Not measured yet: the next run stops and says what to do.
    with pytest.raises(TuneError, match="round-1 waits for its measurements"):
        _round(db, rounds, trials)

    (first.path / RESULTS).write_text('{"results": [{"correct": true}]}')  # no "id"
    with pytest.raises(TuneError, match="round-1: its manifest or gpu_results.json cannot "
                                        "be read"):
        _round(db, rounds, trials)

    timed = _stand_in(first.path)
    second = _round(db, rounds, trials)
    records = RecordStore(db).records()
    assert len(records) == first.count
    assert sum(r.correct is False for r in records) == 1
    assert sum(r.error is not None and r.correct is None for r in records) == 1
    assert sorted(r.latency_us for r in records if r.ok) == pytest.approx(sorted(timed.values()))
    # The second round draws only programs the first did not.
    assert isinstance(second, RoundWritten) and 0 < second.count <= trials - first.count
    again = json.loads((second.path / "manifest.json").read_text())["kernel_sets"]
    assert not {json.dumps(k["trace"]) for k in again} & \
        {json.dumps(k["trace"]) for k in manifest["kernel_sets"]}

    written = second
    for _ in range(trials):  # until the budget is spent: then a report, no further round
        timed.update(_stand_in(written.path))
        written = _round(db, rounds, trials)
        if not isinstance(written, RoundWritten):
            break
    assert len(RecordStore(db).records()) == trials
    assert written.tasks[0].latency_us == pytest.approx(min(timed.values()))


def test_rpc_and_offline_are_refused_together(capsys, tmp_path: Path) -> None:
    from gta_core.cli import main

    code = main(["tune", SPEC, "--target", "cuda-tc", "--trials", "2", "--db",
                 str(tmp_path / "db"), "--rpc", "tracker=h:9190,key=k",
                 "--measure-offline", str(tmp_path / "rounds")])
    assert code == 2
    assert "two places to measure" in capsys.readouterr().err
