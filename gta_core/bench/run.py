"""One bench run: every contender on every workload of a suite, checked, then timed side by side.

First every tuning contender tunes every workload not yet tuned to the budget (in a child
process: see tuning_worker). Then per workload each contender prepares its program (the
tuners' best from their records), every program is checked against the numpy reference,
and the correct ones are timed in ``repeat`` interleaved rounds (one sample of each per
round), so a slow phase of this shared machine lands on every contender rather than on
one. results.json is rewritten after each workload; results.md and the plots follow.
"""

from __future__ import annotations

import fcntl
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..host import require_runs_here
from ..measure import MeasureSettings
from ..models import Target
from ..paths import writable_dir
from ..plugins import Registry, default_registry
from ..workloads import Workload, parse_workload
from .contenders import (
    CONTENDERS,
    PEAK,
    BenchContext,
    Contender,
    ContenderJob,
    TuningContender,
)
from .curves import TuningCurve, tuning_curve
from .isolated import IsolatedProgram, prepare_isolated
from .plots import write_plots
from .programs import Program
from .quiet import QUIET_CORES, OtherLoad, settle, wait_for_quiet
from .report import BenchReport, ContenderResult, PeakEntry, WorkloadResult, geomean_ratios
from .report import markdown as render_markdown
from .suites import SUITES, Suite
from .tuned import TunedLog, TuningPart, code_version
from .tuning_worker import TuningFailed, TuningWorker, first_line

DEFAULT_BASELINES = ("metaschedule", "metaschedule-vnni", "torch", "torch-prepacked", "numpy",
                     "onnxruntime", "onnxruntime-qlinear", "onnxruntime-prepacked", PEAK)


class BenchError(ValueError):
    """A bench request that cannot run as given; the message is one line."""


def resolve_suite(name: str) -> Suite:
    if name not in SUITES:
        raise BenchError(f"unknown suite {name!r}; accepted: {', '.join(SUITES)}")
    return SUITES[name]


def adhoc_suite(specs: Sequence[str], registry: Registry | None = None) -> Suite:
    """The workloads named by ``--workload`` as a suite named ``workloads``, with the ``ops``
    suite's budget: each spec in its canonical form, once. SpecError names a bad one."""
    operators = (registry or default_registry()).operators
    canonical = dict.fromkeys(parse_workload(spec, operators).spec for spec in specs)
    return Suite(name="workloads", description="workloads named by --workload",
                 workloads=tuple(canonical), trials=SUITES["ops"].trials)


def resolve_contenders(names: Sequence[str]) -> tuple[list[Contender], bool]:
    """GTA plus the named baselines, and whether the peak is wanted.

    BenchError names an unknown baseline and the accepted ones.
    """
    accepted = [*CONTENDERS, PEAK]
    for name in names:
        if name not in accepted:
            raise BenchError(f"unknown baseline {name!r}; accepted: {', '.join(accepted)}")
    chosen = ["gta", *(n for n in CONTENDERS if n in names and n != "gta")]
    return [CONTENDERS[n]() for n in chosen], PEAK in names


def parse_baselines(text: str) -> list[str]:
    """``--baselines metaschedule,torch`` as a list (checked by :func:`resolve_contenders`)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise BenchError(f"--baselines is empty; accepted: {', '.join([*CONTENDERS, PEAK])}")
    return names


def check_out(out: str | os.PathLike) -> Path:
    """The output directory, created if needed; BenchError if it cannot be written."""
    return writable_dir(out, "--out", BenchError)


@contextmanager
def claimed_out(out: str | os.PathLike) -> Iterator[Path]:
    """The output directory (see :func:`check_out`), held by this process alone meanwhile:
    a second bench on it would interleave its tuning and timings with this one's."""
    path = check_out(out)
    fd = os.open(path / "bench.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise BenchError(f"--out {path} is in use by another gta bench (pid {holder}); "
                             "wait for it to end or choose another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the lock


def machine() -> str:
    """The CPU model and core count, for the report."""
    from ..host import cpu_cores

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return f"{model}, {cpu_cores()} cores"


def measured_peaks(target: str) -> dict[str, float]:
    """GOPS of each intrinsic of ``target`` that ``gta peak`` could measure here.

    Measured in a child process: in the measuring process a thread of TVM's pool stays
    busy afterwards (a third of a core, seen with getrusage), which stalled every
    multi-threaded contender timed after it (a 3 us torch matmul took 16 ms).
    """
    import subprocess
    import sys

    from ..api import PeakReport

    done = subprocess.run([sys.executable, "-m", "gta_core.cli", "peak", "--target", target,
                           "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1].removeprefix("gta: error: ")
        raise BenchError(f"measuring the peak failed: {why}")
    return {row.intrinsic: row.measurement.gops
            for row in PeakReport.model_validate_json(done.stdout).peaks
            if row.measurement is not None}


def measure_peaks(target: str, registry: Registry,
                  workloads: list[Workload]) -> dict[str, PeakEntry]:
    """Per workload dtype, the fastest measured intrinsic computing exactly those dtypes
    (:func:`measured_peaks`)."""
    measured = measured_peaks(target)
    peaks: dict[str, PeakEntry] = {}
    for workload in workloads:
        p = workload.params
        best = fastest_intrinsic(registry, target, measured, (p.data_dtype, p.weight_dtype),
                                 p.acc_dtype)
        if best is not None:
            peaks[p.dtype] = best
    return peaks


def fastest_intrinsic(registry: Registry, target: str, measured: dict[str, float],
                      input_dtypes, output_dtype: str) -> PeakEntry | None:
    """The fastest intrinsic in ``measured`` (GOPS by name) computing exactly these dtypes."""
    fits = [i.name for i in registry.intrinsics_for(target) if i.name in measured
            and sorted(i.input_dtypes) == sorted(input_dtypes)
            and i.output_dtype == output_dtype]
    if not fits:
        return None
    best = max(fits, key=measured.get)
    return PeakEntry(intrinsic=best, gops=measured[best])


def time_interleaved(programs: dict[str, Program], repeat: int) -> dict[str, list[float]]:
    """``repeat`` rounds, one sample of every program per round, each after a pause
    (:func:`.quiet.settle`); microseconds per program."""
    samples: dict[str, list[float]] = {name: [] for name in programs}
    for _ in range(repeat):
        for name, program in programs.items():
            settle()
            samples[name].append(program.sample_us())
    return samples


def bench_workload(workload: Workload, contenders: list[Contender], ctx: BenchContext,
                   repeat: int, peak: PeakEntry | None,
                   failures: dict[tuple[str, str], str],
                   quiet_wait_s: float = 0.0, isolate: bool = False) -> WorkloadResult:
    """Every contender on one workload: prepare, check against numpy, time interleaved.

    ``failures``: why a (contender, workload) pair failed to tune; it is reported failed.
    Timing starts once other processes leave the cores quiet, or after ``quiet_wait_s``.
    ``isolate`` prepares and times each contender of ``CONTENDERS`` in a process of its own
    (see isolated.py).
    """
    inputs = workload.random_inputs(seed=0)
    expected = workload.expected(inputs)
    results: dict[str, ContenderResult] = {}
    programs: dict[str, Program] = {}
    children: list[IsolatedProgram] = []
    try:
        _prepare_all(workload, contenders, ctx, inputs, expected, failures, isolate,
                     results, programs, children)
        other_cores, timed = _time_all(workload, programs, ctx, repeat, quiet_wait_s)
    finally:
        for child in children:
            child.close()
    for name, samples in timed.items():
        median = statistics.median(samples)
        gflops = workload.flops / median / 1e3
        results[name] = results[name].model_copy(update={
            "latency_us": median, "latency_min_us": min(samples),
            "latency_max_us": max(samples), "spread": (max(samples) - min(samples)) / median,
            "gflops": gflops, "fraction_of_peak": gflops / peak.gops if peak else None})
    return WorkloadResult(workload=workload.spec, dtype=workload.params.dtype,
                          gflop=workload.flops / 1e9, peak_gops=peak.gops if peak else None,
                          other_cores=other_cores, contenders=results)


def _prepare_all(workload: Workload, contenders: list[Contender], ctx: BenchContext,
                 inputs: list, expected, failures: dict[tuple[str, str], str], isolate: bool,
                 results: dict[str, ContenderResult], programs: dict[str, Program],
                 children: list[IsolatedProgram]) -> None:
    """Prepare and check every contender; fills ``results``, and ``programs`` with the
    correct ones to time (``children``: the isolated ones, to close afterwards)."""
    for contender in contenders:
        name = contender.name
        reason = contender.skip_reason(workload, ctx)
        if reason is not None:
            results[name] = ContenderResult(contender=name, status="skipped", note=reason)
            continue
        if (name, workload.spec) in failures:
            results[name] = ContenderResult(contender=name, status="failed",
                                            note=failures[name, workload.spec])
            continue
        try:
            if isolate and type(contender) is CONTENDERS.get(name):
                prepared = prepare_isolated(name, workload.spec, ctx)
                if prepared.program is not None:
                    children.append(prepared.program)
            else:
                prepared = contender.prepare(workload, inputs, ctx)
            mismatch = (prepared.program.mismatch(workload, expected)
                        if prepared.program is not None else None)
        except Exception as exc:  # noqa: BLE001 - one broken contender must not end the run
            results[name] = ContenderResult(contender=name, status="failed",
                                            note=first_line(exc))
            ctx.progress(f"{name}: failed on {workload.spec}: {first_line(exc)}")
            continue
        result = ContenderResult(contender=name, status="failed", note=prepared.note,
                                 trials=prepared.trials, tuning_seconds=prepared.tuning_seconds)
        if prepared.program is not None:
            result.correct = mismatch is None
            result.status = "timed" if mismatch is None else "wrong"
            result.note = mismatch or prepared.note
            if mismatch is None:
                programs[name] = prepared.program
            else:
                ctx.progress(f"{name}: WRONG on {workload.spec}: {mismatch}")
        results[name] = result


def _time_all(workload: Workload, programs: dict[str, Program], ctx: BenchContext,
              repeat: int, quiet_wait_s: float
              ) -> tuple[float | None, dict[str, list[float]]]:
    """(cores other processes used meanwhile, samples per program) of the interleaved rounds,
    once the cores are quiet or ``quiet_wait_s`` has passed."""
    if not programs:
        return None, {}
    ours = tuple(p.process.pid for p in programs.values() if isinstance(p, IsolatedProgram))
    waited, seen = (wait_for_quiet(quiet_wait_s, load=OtherLoad(pids=ours))
                    if quiet_wait_s > 0 else (0.0, None))
    if seen is not None and seen > QUIET_CORES:
        ctx.progress(f"other processes still use {seen:.1f} cores after {waited:.0f} s; "
                     "timing anyway (the report says so)")
    ctx.progress(f"timing {', '.join(programs)} on {workload.spec} ({repeat} rounds)")
    load = OtherLoad(pids=ours)
    timed = time_interleaved(programs, repeat)
    return load.cores(), timed


def tune_all(workloads: list[Workload], contenders: list[Contender],
             ctx: BenchContext) -> dict[tuple[str, str], str]:
    """Tune every (tuning contender, workload) pair not yet tuned to the budget, in a child
    process; returns why each failed pair failed. Each finished part is logged at once."""
    failures: dict[tuple[str, str], str] = {}
    with TuningWorker() as worker:
        for workload in workloads:
            for contender in contenders:
                if (not isinstance(contender, TuningContender)
                        or contender.skip_reason(workload, ctx) is not None):
                    continue
                where = contender.records_dir(workload, ctx)
                on_record = contender.measured(where)
                if contender.tuned(workload, ctx).budget >= ctx.trials:
                    ctx.progress(f"{contender.name}: {workload.spec} tuned already "
                                 f"({on_record} trials on record)")
                    continue
                ctx.progress(f"{contender.name}: tuning {workload.spec} ({ctx.trials} trials, "
                             f"{on_record} on record)")
                start = time.time()
                try:
                    chosen = worker.tune(ContenderJob.of(contender.name, workload.spec, ctx))
                except TuningFailed as exc:
                    failures[contender.name, workload.spec] = f"tuning failed: {exc}"
                    ctx.progress(f"{contender.name}: tuning {workload.spec} failed: {exc}")
                    continue
                log = TunedLog.load(ctx.tuned_path)
                entry = log.entry(contender.name, workload.spec)
                entry.parts.append(TuningPart(start=start, end=time.time(), budget=ctx.trials,
                                              code=code_version()))
                entry.chosen = chosen
                log.save(ctx.tuned_path)
    return failures


def tuned_by(workloads: list[Workload], contenders: list[Contender],
             ctx: BenchContext) -> dict[str, list[str]]:
    """Per tuning contender, the code versions that tuned its records of these workloads."""
    log = TunedLog.load(ctx.tuned_path)
    return {c.name: sorted({code for w in workloads
                            for code in log.entry(c.name, w.spec).codes})
            for c in contenders if isinstance(c, TuningContender)}


def curves_of(workload: Workload, contenders: list[Contender],
              ctx: BenchContext) -> list[TuningCurve]:
    log = TunedLog.load(ctx.tuned_path)
    return [tuning_curve(workload.spec, c.name, workload.flops,
                         c.history(c.records_dir(workload, ctx)),
                         log.entry(c.name, workload.spec))
            for c in contenders if isinstance(c, TuningContender)]


def run_bench(suite: Suite, out: str | os.PathLike, *, contenders: list[Contender],
              trials: int | None = None, peak: bool = True, target: str = "avx512",
              repeat: int = 5, registry: Registry | None = None,
              measure: MeasureSettings | None = None, quiet_wait_s: float = 0.0,
              isolate: bool = False, first: int | None = None,
              progress: Callable[[str], None] | None = None) -> BenchReport:
    """Benchmark ``contenders`` on ``suite`` into ``out``; returns what results.json holds.

    ``trials`` per workload and tuning contender (default: the suite's budget). Tuning
    records stay in ``out``: a rerun tunes only what is unfinished and re-times the rest.
    Each workload is timed once other processes leave the cores quiet, waiting at most
    ``quiet_wait_s`` (quiet.py); results.json says how busy they were meanwhile.
    ``isolate`` times each contender in a process of its own (isolated.py). ``first``
    takes only the suite's first workloads, so a big suite can be finished in parts.
    """
    trials = suite.trials if trials is None else trials
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise BenchError(f"--trials must be a positive integer, got {trials!r}")
    if repeat < 1:
        raise BenchError(f"--repeat must be a positive integer, got {repeat!r}")
    if first is not None and not (isinstance(first, int) and first >= 1):
        raise BenchError(f"--first must be a positive integer, got {first!r}")
    if not 0 <= quiet_wait_s < math.inf:  # NaN fails too
        raise BenchError(f"--quiet-wait must be a finite number of seconds >= 0, "
                         f"got {quiet_wait_s!r}")
    registry = registry or default_registry()
    chosen: Target = registry.target(target)
    if chosen.kind != "cpu":
        raise BenchError(f"gta bench times programs on this machine's CPU; target {target} "
                         f"is a {chosen.kind} target")
    with claimed_out(out) as path:
        require_runs_here(chosen)  # after --out's check: a bad folder is named first
        workloads = [parse_workload(spec, registry.operators) for spec in suite.workloads[:first]]
        say = progress or (lambda text: None)
        ctx = BenchContext(target=chosen, trials=trials, out=path, registry=registry,
                           measure=measure or MeasureSettings(), progress=say)
        start = time.perf_counter()
        failures = tune_all(workloads, contenders, ctx)
        peaks: dict[str, PeakEntry] = {}
        if peak:
            say(f"measuring the peak of {target}'s intrinsics")
            peaks = measure_peaks(target, registry, workloads)
        results: list[WorkloadResult] = []
        curves: list[TuningCurve] = []
        load = [os.getloadavg()[0]]

        def report(complete: bool) -> BenchReport:
            ratios, counts = geomean_ratios(results)
            by_dtype = {dtype: geomean_ratios([r for r in results if r.dtype == dtype])
                        for dtype in dict.fromkeys(r.dtype for r in results)}
            return BenchReport(
                suite=suite.name, suite_workloads=len(suite.workloads), target=target,
                machine=machine(), code=code_version(),
                tuned_by=tuned_by(workloads, contenders, ctx), trials=trials, repeat=repeat,
                contenders=[c.name for c in contenders],
                methods={c.name: c.method for c in contenders}, peak=peaks, workloads=results,
                geomean_ratio=ratios, geomean_workloads=counts,
                geomean_by_dtype={d: r for d, (r, _) in by_dtype.items()},
                geomean_workloads_by_dtype={d: c for d, (_, c) in by_dtype.items()},
                load_average=[*load, os.getloadavg()[0]], seconds=time.perf_counter() - start,
                complete=complete)

        for i, workload in enumerate(workloads, start=1):
            say(f"[{i}/{len(workloads)}] {workload.spec}")
            results.append(bench_workload(workload, contenders, ctx, repeat,
                                          peaks.get(workload.params.dtype), failures,
                                          quiet_wait_s, isolate))
            curves += curves_of(workload, contenders, ctx)
            (path / "results.json").write_text(report(complete=False).model_dump_json(indent=2))
        final = report(complete=True)
        (path / "curves.json").write_text(
            "[" + ",\n".join(c.model_dump_json() for c in curves) + "]\n")
        plots = write_plots(final, curves, path)
        (path / "results.json").write_text(final.model_dump_json(indent=2))
        (path / "results.md").write_text(render_markdown(final, plots))
        return final

