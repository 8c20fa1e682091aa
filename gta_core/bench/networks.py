"""``gta bench --suite net-MODEL``: a whole network, end to end, every contender side by side.

The model comes from the offline zoo (:mod:`.zoo`), exported once to ``OUT/model.onnx``.
A ``net-MODEL-int8`` suite also quantizes it (``OUT/model-int8.onnx``, QDQ, as
onnxruntime's ``quantize_static`` writes it) and runs the int8 model: GTA's integer
programs, onnxruntime's int8 kernels, and MetaSchedule and untuned TVM on the QDQ model as
TVM imports it (in float); PyTorch's own int8 model (``torch-int8``, quantized from the
float one, checked against the float model by its reference model's error); and GTA and
onnxruntime on the float model (``gta-fp32``, ``onnxruntime-fp32``; GTA's float records in
``OUT/fp32``). GTA and
MetaSchedule tune it at the same total trial budget (:mod:`.net_tuning`,
resumable); then each contender is prepared in a process of its own (:mod:`.net_runners`),
its outputs are checked against onnxruntime's on the same random inputs, and the checked
ones are timed in interleaved rounds once the cores are quiet. ``OUT/results.json`` and
``OUT/results.md`` hold medians, spreads, GTA's speedup over each (the ratio of medians, and
per round: rounds are interleaved, so a round's two samples saw the same state of the host,
which on a host with slow spells says more than the medians), and each tuner's time.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from ..frontends import load_onnx
from ..host import require_runs_here
from ..model_compile import CompileError, check_outputs, model_inputs
from ..plugins import default_registry
from ..quantized_check import QuantizedCheck, check_own_quantization, check_quantized
from .hotspots import Hotspot, function_times, hotspots, load_report, times_in_model
from .hotspots import markdown as hotspot_lines
from .net_runners import (
    INT8_CONTENDERS,
    NET_CONTENDERS,
    TORCH_INT8_REFERENCE,
    NetRunner,
    RunnerFailed,
)
from .net_tuning import gta_report_path, tune_gta, tune_metaschedule, tuned_state
from .quiet import OtherLoad, settle, wait_for_quiet
from .tuning_worker import first_line
from .zoo import ZOO, export_onnx, export_qdq

NET_SUITES = {**{f"net-{name}": name for name in ZOO},
              **{f"net-{name}-int8": name for name in ZOO}}
TUNERS = ("gta", "metaschedule", "gta-fp32")
FLOAT = "-fp32"  # a contender on the float model, beside an int8 suite's


class NetResult(BaseModel):
    contender: str
    latency_ms: float | None = None  # median over rounds
    spread: float | None = None  # (max - min) / median
    samples_ms: list[float] = []
    correct: bool | None = None
    max_error: float | None = None
    note: str | None = None  # why it has no time
    quantized: QuantizedCheck | None = None  # an int8 suite's int8 contenders (max_error:
    # its relative RMS)
    trials: int | None = None
    tuning_seconds: float | None = None


class RoundRatios(BaseModel):
    """A contender's sample over GTA's in the same round, over the rounds both were timed."""

    median: float
    low: float
    high: float
    gta_faster: int  # rounds where the contender took longer than GTA
    rounds: int


class NetBenchReport(BaseModel):
    suite: str
    model: str
    description: str
    host: str
    target: str
    mcpu: str | None
    trials: int
    repeat: int
    code: str
    tuned_code: dict[str, str]
    results: list[NetResult]
    speedup: dict[str, float]  # "gta/X": X's latency over GTA's
    per_round: dict[str, RoundRatios] = {}  # "gta/X": X's sample over GTA's, round by round
    other_cores: float | None  # cores other processes used while timing
    seconds: float
    hotspots: list[Hotspot] = []  # GTA's functions taking most of its time


def suite_contenders(suite: str) -> tuple[str, ...]:
    """Every contender a network suite can time."""
    return INT8_CONTENDERS if suite.endswith("-int8") else NET_CONTENDERS


def _tune(tuner: str, onnx_path: str, target: str, trials: int, out: str) -> None:
    if tuner == "metaschedule":  # the model as TVM imports it: a QDQ model computes in float
        tune_metaschedule(load_onnx(onnx_path, integer=False),
                          default_registry().target(target), trials, out)
    else:
        tune_gta(load_onnx(onnx_path), target, trials, out)


def _outputs(runs: str, job: dict, inputs: list) -> list:
    """The outputs of ``runs`` on ``inputs``, run in a process of its own."""
    runner = NetRunner(runs, job, inputs)
    try:
        return runner.ask("output")
    finally:
        runner.close()


def _variant(contender: str, job: dict, float_job: dict) -> tuple[str, dict]:
    """(the runner, its job) of ``contender``: ``X-fp32`` is runner X on the float model."""
    if contender.endswith(FLOAT):
        return contender.removesuffix(FLOAT), float_job
    return contender, job


def _child(connection, function: Callable, args: tuple) -> None:
    try:
        connection.send(("ok", function(*args)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent in one line
        connection.send(("error", first_line(exc)))


def _in_child(function: Callable, *args):
    """``function(*args)`` in a fresh process; its result, or BenchError with its reason."""
    from .run import BenchError

    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    process = spawn.Process(target=_child, args=(child, function, args))
    process.start()
    child.close()
    try:
        kind, value = parent.recv()
    except EOFError:
        kind, value = "error", f"its process died (exit status {process.exitcode})"
    except BaseException:  # interrupted: its work (a tuning) ends with this run, not after
        _stop(process)
        raise
    process.join()
    if kind == "error":
        raise BenchError(f"{function.__name__.strip('_')}: {value}")
    return value


def _stop(process, grace: float = 60) -> None:
    """SIGINT to a child, as Ctrl-C would send it (a tuning keeps its records and closes
    its workers), then SIGKILL if it is still there after ``grace`` seconds."""
    if process.is_alive():
        os.kill(process.pid, signal.SIGINT)
        process.join(timeout=grace)
    if process.is_alive():
        process.kill()
        process.join()


def _hotspots(out: Path, onnx_path: Path, target: str) -> list[Hotspot]:
    """GTA's compiled functions that take most of its time, each timed alone in a fresh
    process, against the peak measured now, and inside the model in another."""
    from .run import BenchError, measured_peaks

    report = load_report(gta_report_path(out))
    if report is None:
        return []
    times = _in_child(function_times, str(onnx_path), target, str(out / "gta"))
    in_model = _in_child(times_in_model, str(onnx_path), target, str(out / "gta"))
    try:
        peaks = measured_peaks(target)
    except BenchError:  # the table still ranks the functions; their fraction of peak is "-"
        peaks = {}
    return hotspots(times, report, peaks, default_registry(), in_model=in_model)


def _speedups(results: list[NetResult]) -> dict[str, float]:
    by_name = {r.contender: r for r in results}
    gta = by_name.get("gta")
    if gta is None or gta.latency_ms is None:
        return {}
    return {f"gta/{r.contender}": r.latency_ms / gta.latency_ms for r in results
            if r.contender != "gta" and r.latency_ms is not None}


def round_ratios(results: list[NetResult], rounds: int) -> dict[str, RoundRatios]:
    """Each contender's samples over GTA's, paired by round; only where both were timed in
    all ``rounds`` (a sample missing from a failed round leaves the rest unpaired)."""
    gta = next((r for r in results if r.contender == "gta"), None)
    if gta is None or len(gta.samples_ms) != rounds:
        return {}
    paired = {}
    for r in results:
        if r.contender == "gta" or len(r.samples_ms) != rounds:
            continue
        ratios = [x / g for x, g in zip(r.samples_ms, gta.samples_ms)]
        paired[f"gta/{r.contender}"] = RoundRatios(
            median=statistics.median(ratios), low=min(ratios), high=max(ratios),
            gta_faster=sum(x > 1 for x in ratios), rounds=len(ratios))
    return paired


def _per_round(ratios: RoundRatios | None) -> str:
    if ratios is None:
        return "-"
    return (f"{ratios.median:.2f}x ({ratios.low:.2f}-{ratios.high:.2f}), GTA faster in "
            f"{ratios.gta_faster} of {ratios.rounds}")


def markdown(report: NetBenchReport) -> str:
    lines = [f"# {report.suite}: {report.description}", "",
             f"Host: {report.host}; target {report.target} (mcpu {report.mcpu}); "
             f"{report.trials} trials per tuner; {report.repeat} interleaved rounds; timed at "
             f"{report.code}" + (f"; other processes used {report.other_cores:.2f} cores"
                                 if report.other_cores is not None else ""), "",
             "| contender | latency ms (median) | spread | checked | GTA speedup | per round | "
             "trials | tuning s |", "|---|---|---|---|---|---|---|---|"]
    for r in report.results:
        speed = report.speedup.get(f"gta/{r.contender}")
        lines.append(
            f"| {r.contender} | {f'{r.latency_ms:.2f}' if r.latency_ms else '-'} | "
            f"{f'{r.spread:.0%}' if r.spread is not None else '-'} | "
            f"{({True: 'yes', False: 'WRONG', None: '-'})[r.correct]} | "
            f"{f'{speed:.2f}x' if speed else '-'} | "
            f"{_per_round(report.per_round.get(f'gta/{r.contender}'))} | {r.trials or '-'} | "
            f"{f'{r.tuning_seconds:.0f}' if r.tuning_seconds else '-'} |"
            + (f" {r.note}" if r.note else ""))
    if report.hotspots:
        lines += ["", "Where GTA's time goes (each function of its compiled model timed alone, "
                  "x its calls; and timed inside the model as it runs):", "",
                  *hotspot_lines(report.hotspots)]
    return "\n".join(lines) + "\n"


def run_network_bench(suite: str, out: str | Path, *, trials: int, contenders: list[str],
                      target: str = "avx512", repeat: int = 5, quiet_wait_s: float = 60.0,
                      progress: Callable[[str], None] | None = None) -> NetBenchReport:
    """Tune, check and time ``suite``'s model (see the module docstring)."""
    from .run import BenchError, claimed_out, machine
    from .tuned import code_version

    if suite not in NET_SUITES:
        raise BenchError(f"unknown network suite {suite!r}; known: {', '.join(NET_SUITES)}")
    known = suite_contenders(suite)
    unknown = [c for c in contenders if c not in known]
    if unknown:
        raise BenchError(f"unknown contender(s) {', '.join(unknown)} for {suite}; "
                         f"known: {', '.join(known)}")
    say = progress or (lambda text: None)
    start = time.perf_counter()
    with claimed_out(out) as out:
        if any(t in contenders for t in TUNERS):  # they tune and time the target's programs
            require_runs_here(default_registry().target(target))
        name = NET_SUITES[suite]
        float_path = out / "model.onnx"
        # Export and tuning run in child processes: torch's ONNX exporter and MetaSchedule
        # leave logging and thread-pool state behind that later MetaSchedule runs and timings
        # in this process would inherit.
        if not float_path.exists():
            say(f"exporting {name} to {float_path}")
            _in_child(export_onnx, name, float_path)
        onnx_path = float_path
        if suite.endswith("-int8"):
            onnx_path = out / "model-int8.onnx"
            if not onnx_path.exists():
                say(f"quantizing {name} to {onnx_path}")
                _in_child(export_qdq, name, float_path, onnx_path)
        model = load_onnx(onnx_path)
        steps = model.quantized.output_steps if model.quantized else None
        chosen = default_registry().target(target)
        job = {"model": name, "onnx": str(onnx_path), "out": str(out), "target": target}
        float_job = {**job, "onnx": str(float_path), "out": str(out / "fp32")}
        for tuner in (t for t in TUNERS if t in contenders):
            say(f"{tuner}: tuning {name} ({trials} trials)")
            _, where = _variant(tuner, job, float_job)
            Path(where["out"]).mkdir(exist_ok=True)
            _in_child(_tune, tuner.removesuffix(FLOAT), where["onnx"], target, trials,
                      where["out"])
        tuned = {**{f"{k}{FLOAT}": v for k, v in tuned_state(out / "fp32").items()},
                 **tuned_state(out)}
        inputs = model_inputs(model)
        want, literal = {}, None
        for variant in (job, float_job, {**job, "literal": True}) if steps else (job,):
            say(f"reference outputs: onnxruntime on {Path(variant['onnx']).name}"
                + (" (graph optimizations off)" if variant.get("literal") else ""))
            outputs = _outputs("onnxruntime", variant, inputs)
            if variant.get("literal"):
                literal = outputs
            else:
                want[variant["onnx"]] = outputs
        torch_reference = None
        if "torch-int8" in contenders:
            say("reference outputs: PyTorch's reference model of its int8 quantization")
            try:
                torch_reference = _outputs(TORCH_INT8_REFERENCE, job, inputs)
            except RunnerFailed as exc:
                say(f"torch-int8: no reference model ({exc})")
        results, runners = [], {}
        for contender in contenders:
            result = NetResult(contender=contender, trials=tuned.get(contender, {}).get("trials"),
                               tuning_seconds=tuned.get(contender, {}).get("seconds"))
            results.append(result)
            say(f"{contender}: preparing and checking")
            runs, where = _variant(contender, job, float_job)
            try:
                runner = NetRunner(runs, where, inputs)
            except RunnerFailed as exc:
                result.note = f"failed: {exc}"
                continue
            try:
                got = runner.ask("output")
                if contender == "torch-int8":  # scales of its own: its reference model's
                    if torch_reference is None:
                        raise RunnerFailed("its reference model could not be made")
                    result.quantized = check_own_quantization(got, torch_reference,
                                                              want[float_job["onnx"]])
                    result.max_error = result.quantized.relative_rms
                    result.note = ("quantized by PyTorch (FX, x86 backend) on the same "
                                   "calibration inputs; checked against the float model, "
                                   "by its reference model's error")
                elif steps and where is job:  # the quantized model: onnxruntime's yardstick
                    result.quantized = check_quantized(got, want[job["onnx"]], literal, steps)
                    result.max_error = result.quantized.relative_rms
                else:
                    result.max_error, _ = check_outputs(got, want[where["onnx"]])
                result.correct = True
                runners[contender] = runner
            except (CompileError, RunnerFailed) as exc:
                result.correct, result.note = False, f"not timed: {exc}"
                runner.close()
        if quiet_wait_s > 0:
            wait_for_quiet(quiet_wait_s)
        load = OtherLoad(pids=tuple(r.process.pid for r in runners.values()))
        order = list(runners)
        for round_ in range(repeat):  # each round starts with the next contender
            say(f"timing round {round_ + 1} of {repeat}")
            shift = round_ % len(order) if order else 0
            for contender in order[shift:] + order[:shift]:
                result = next(r for r in results if r.contender == contender)
                settle()  # the previous contender's idle workers stop spinning first
                try:
                    result.samples_ms.append(runners[contender].ask("sample") / 1e3)
                except RunnerFailed as exc:
                    result.note = f"failed while timed: {exc}"
        other = load.cores()
        timed_gta = "gta" in runners
        for contender, runner in runners.items():
            runner.close()
            result = next(r for r in results if r.contender == contender)
            if result.samples_ms:
                result.latency_ms = statistics.median(result.samples_ms)
                samples = result.samples_ms
                result.spread = (max(samples) - min(samples)) / result.latency_ms
        spots = []
        if timed_gta:  # after the rounds, on the cores they found quiet, every contender closed
            say("gta: timing its compiled functions one by one")
            spots = _hotspots(out, onnx_path, target)
        report = NetBenchReport(
            suite=suite, model=name, description=ZOO[name].description, host=machine(),
            target=target, mcpu=chosen.tvm.get("mcpu"), trials=trials, repeat=repeat,
            code=code_version(), tuned_code={k: v.get("code", "?") for k, v in tuned.items()},
            results=results, speedup=_speedups(results), per_round=round_ratios(results, repeat),
            other_cores=other,
            seconds=time.perf_counter() - start, hotspots=spots)
        (out / "results.json").write_text(report.model_dump_json(indent=1))
        (out / "results.md").write_text(markdown(report))
        return report
