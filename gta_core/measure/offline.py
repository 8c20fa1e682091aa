"""Tuning measured elsewhere, in rounds (``gta tune --measure-offline DIR``).

Where the machine that runs the programs has no TVM (a lent GPU with nvcc and torch, reached
once in a while), a tuning goes round by round. Each ``gta tune ... --measure-offline DIR``:

1. takes back the measurements of DIR's rounds: ``round-N/gpu_results.json``, as
   ``benchmarks/gpu_check/run_on_gpu.py --kernels DIR/round-N --out DIR/round-N`` writes it
   on the GPU (each output checked against a reference after a garbage fill, then timed with
   CUDA events). Each becomes a record of the store, as if measured here; a wrong output is
   a record marked wrong, a kernel that failed to compile or run one with its error;
2. runs the scheduler as an ordinary run does (the budget counts the records, the searches
   start from them, the cost model learns from them), until it hands its first batch to be
   measured (:func:`gta_core.scheduler.search.measure_round`);
3. writes that batch as ``round-N+1``: one kernel set per candidate
   (:mod:`.kernel_sets`: CUDA source and launches, the format ``run_on_gpu.py`` reads), with
   what the record needs (task, mapping, trace), and stops with :class:`RoundWritten`.

A run whose budget is spent writes nothing and reports as usual. A round still waiting for
its measurements stops the next run with one line (measure it, or delete it to draw anew).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..database import formats
from ..models import Target
from .kernel_sets import kernel_set, new_manifest, workload_entry
from .runners import error_line

RESULTS = "gpu_results.json"  # what run_on_gpu.py writes into --out
TAKEN = "taken.json"  # written once a round's results are in the store
ROUND = "round-"


class RoundWritten(Exception):  # noqa: N818 - not an error: the run stops for measurements
    """A round of candidates waits in ``path`` to be measured elsewhere."""

    def __init__(self, path: Path, count: int) -> None:
        super().__init__(f"{count} candidate(s) written to {path}")
        self.path = path
        self.count = count


class RoundError(ValueError):
    """A round that cannot be taken back (no measurements yet, unreadable ones); one line."""


def rounds(directory: Path) -> list[Path]:
    """DIR's rounds, oldest first."""
    found = [p for p in directory.glob(f"{ROUND}*")
             if p.is_dir() and p.name[len(ROUND):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(ROUND):]))


def take_back(directory: Path, store) -> int:
    """Add the measurements of every round not taken yet to ``store``; how many records.

    RoundError where a round has none yet or they cannot be read.
    """
    added = 0
    for path in rounds(directory):
        if (path / TAKEN).exists():
            continue
        if not (path / RESULTS).exists():
            raise RoundError(
                f"{path} waits for its measurements ({RESULTS}): run benchmarks/gpu_check/"
                f"run_on_gpu.py --kernels {path} --out {path} on the GPU, or delete {path} "
                "to draw that round anew")
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            results = {r["id"]: r for r in json.loads((path / RESULTS).read_text())["results"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RoundError(f"{path}: its manifest or {RESULTS} cannot be read "
                             f"({type(exc).__name__}: {str(exc)[:120]}); measure it again with "
                             "run_on_gpu.py, or delete it") from None
        for kset in manifest["kernel_sets"]:
            result = results.get(kset["id"], {"status": "missing from the results"})
            run_secs, error, correct = _outcome(result)
            store.append(kset["task"], kset["mapping"], kset["db_workload"], kset["trace"],
                         run_secs, kset["tvm_target"], kset["args_info"], error=error,
                         correct=correct)
            added += 1
        (path / TAKEN).write_text(json.dumps({"records": len(manifest["kernel_sets"])}))
    return added


def _outcome(result: dict) -> tuple[list[float] | None, str | None, bool | None]:
    """(run_secs, error, correct) of one kernel set's result on the GPU."""
    if "correct" not in result:  # never checked: compile failure, crash, hang...
        return None, f"gpu: {result.get('status', 'no result')}", None
    if not result["correct"]:
        bad = result.get("check", {}).get("bad")
        return None, f"wrong: {bad} output(s) outside the bound on the GPU", False
    return [result["median_us"] * 1e-6], None, True


class OfflineRound:
    """The runner of an offline run: ``measure_round`` hands it its batch (:meth:`write`)."""

    def __init__(self, directory: Path, target: Target) -> None:
        self.directory = directory
        self.target = target

    def write(self, flat: list, refused: list[str | None]) -> None:
        """Write ``flat`` ((task search, candidate) pairs) as the next round, but for those
        ``refused`` names an error for (recorded as their failure); RoundWritten."""
        done = rounds(self.directory)
        number = int(done[-1].name[len(ROUND):]) + 1 if done else 1
        out = self.directory / f"{ROUND}{number}"
        out.mkdir(parents=True)
        manifest = new_manifest(self.target)
        tvm_target = self.target.tvm_target()
        entries: dict[str, dict] = {}
        for index, ((search, candidate), refusal) in enumerate(zip(flat, refused)):
            task = search.task
            spec = task.workload.spec
            if spec not in entries:
                entries[spec] = workload_entry(task.workload, len(entries))
                manifest["workloads"].append(entries[spec])
            set_id = f"r{number}-{index}-{task.mapping_id}"
            record = {"task": task.key, "db_workload": search._workload,  # the store's index
                      "trace": formats.trace_json(candidate.sch.trace),
                      "tvm_target": formats.target_json(tvm_target),
                      "args_info": formats.args_info_json(candidate.args_info)}
            try:
                if refusal:
                    raise ValueError(refusal)
                kset = kernel_set(candidate.sch.mod, self.target, entries[spec], set_id, out)
            except Exception as exc:  # noqa: BLE001 - recorded as the candidate's failure
                error = error_line(str(exc)) or type(exc).__name__
                search.store.append(task.key, task.mapping_id, record["db_workload"],
                                    record["trace"], None, record["tvm_target"],
                                    record["args_info"], error=f"build: {error}")
                manifest["skipped"].append({"set": set_id, "why": error})
                continue
            manifest["kernel_sets"].append({**kset, **record, "mapping": task.mapping_id,
                                            "intrinsic": task.intrinsic.name, "seed": index})
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
        raise RoundWritten(out, len(manifest["kernel_sets"]))
