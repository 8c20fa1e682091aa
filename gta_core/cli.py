"""The ``gta`` command: parses arguments, calls :mod:`gta_core.api`, prints.

Exit status: 0 on success, 2 for anything a user can cause (one line on
stderr), 1 for bugs. ``--json`` prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from . import __version__, api, interrupts
from .bench import DEFAULT_BASELINES, SUITES, BenchError
from .bench.networks import NET_SUITES
from .cli_check import add_check_plugin_command
from .cli_model import (
    add_compile_command,
    add_model_options,
    cmd_bench_network,
    cmd_tune_model,
    measure_settings,
)
from .cli_stages import add_stages_command
from .codegen import CodegenError
from .conformance import UnknownPlugin
from .database import RecordWriteError
from .frontends import ModelError
from .host import HostCannotRun, environment_error
from .measure.settings import RPCSpecError, RPCUnavailable
from .model_compile import CompileError
from .models import UnknownArch
from .plugins import UnknownTarget, plugins_env_error
from .stage_profile import StageProfileError
from .tuning import TuneError
from .workloads import SpecError

USER_ERRORS = (SpecError, UnknownTarget, api.NothingMeasured, TuneError, RPCSpecError,
               RPCUnavailable, CodegenError, UnknownArch, BenchError, ModelError, CompileError,
               UnknownPlugin, RecordWriteError, HostCannotRun, StageProfileError)


class UsageError(Exception):
    """Bad command-line usage; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage too; we want one line
        raise UsageError(message)


def _print_json(model: BaseModel) -> None:
    print(model.model_dump_json(indent=2))


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)


def cmd_plugins(args: argparse.Namespace) -> int:
    report = api.plugins_report()
    if args.json:
        _print_json(report)
        return 0
    for plugin in report.plugins:
        kind = "built-in" if plugin.builtin else "plugin"
        sdk = f", SDK {plugin.api_version}" if plugin.api_version else ""
        print(f"{plugin.name} {plugin.version} ({kind}{sdk})")
        for target in plugin.targets:
            print(f"  target {target.name}: {target.description}")
            if target.cannot_run:
                print(f"    {target.cannot_run}")
        if plugin.intrinsics:
            rows = [[i.name, i.target, "x".join(map(str, i.shape.values())),
                     i.dtypes] for i in plugin.intrinsics]
            print("  " + _table(rows, ["intrinsic", "target", "shape", "dtypes"])
                  .replace("\n", "\n  "))
        for label, items in (("operators", plugin.operators), ("rules", plugin.rules),
                             ("constraints", plugin.constraints),
                             ("cost models", plugin.cost_models)):
            if items:
                print(f"  {label}: {', '.join(item.name for item in items)}")
    for failure in report.failures:
        print(f"FAILED {failure.plugin} ({failure.stage}): {failure.cause}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    report = api.describe(args.spec, target=args.target)
    if args.json:
        _print_json(report)
        return 0
    print(report.workload)
    for tensor in [*report.inputs, report.output]:
        print(f"  {tensor.role:7} {tensor.name:8} {tensor.dtype:9} {tensor.shape}")
    print(f"  work    {report.flops / 1e9:.3f} G{'OP' if 'int' in report.output.dtype else 'FLOP'}")
    if report.target is not None:
        names = ", ".join(i.name for i in report.intrinsics) or "none"
        print(f"  {report.target} intrinsics for these dtypes: {names}")
    return 0


def _stderr_log():
    """A progress callback printing timestamped lines on stderr (rich)."""
    from rich.console import Console

    console = Console(stderr=True, log_path=False)
    return lambda text: console.log(text, highlight=False)


def _print_bench(report) -> None:
    from .bench.report import geomean_lines, side_by_side

    print(f"{report.suite} on {report.target} ({report.machine}, load average "
          f"{report.load_average[-1]:.1f}): {report.trials} trials per tuning contender; "
          f"median of {report.repeat} interleaved rounds, [slowest-fastest]; every program "
          "checked against numpy first")
    print(side_by_side(report))
    for line in geomean_lines(report):
        print(line.removeprefix("- "))
    skipped = {(name, r.note) for w in report.workloads for name, r in w.contenders.items()
               if r.status in ("skipped", "failed", "wrong")}
    for name, note in sorted(skipped, key=str):
        print(f"{name}: {note}")


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import adhoc_suite, parse_baselines, resolve_contenders, resolve_suite, run_bench
    from .bench.networks import NET_SUITES

    if args.suite in NET_SUITES:
        if args.first is not None or args.one_process:
            raise UsageError("--first and --one-process are for operator suites")
        return cmd_bench_network(args)
    suite = adhoc_suite(args.workload) if args.workload else resolve_suite(args.suite)
    contenders, peak = resolve_contenders(parse_baselines(
        args.baselines or ",".join(DEFAULT_BASELINES)))
    out = args.out or f"bench-{suite.name}"
    report = run_bench(suite, out, contenders=contenders, trials=args.trials, peak=peak,
                       target=args.target, repeat=args.repeat,
                       quiet_wait_s=args.quiet_wait, isolate=not args.one_process,
                       first=args.first, progress=_stderr_log())
    if args.json:
        _print_json(report)
        return 0
    _print_bench(report)
    print(f"{report.seconds:.0f} s; results.json, results.md and plots in {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .bench.networks import markdown

    if f"net-{args.model}" not in NET_SUITES:
        raise UsageError(f"demo --model {args.model}: not in the zoo; it has "
                         f"{', '.join(n.removeprefix('net-') for n in NET_SUITES)}")
    report = api.demo(target=args.target, trials=args.trials, out=args.out, model=args.model,
                      progress=_stderr_log())
    if args.json:
        _print_json(report)
        return 0
    print(markdown(report))
    out = args.out
    print(f"The ONNX file, GTA's tuning records and these results are in {out}/ (results.md; "
          f"GTA's per-function report: {out}/gta-report.json). A second run resumes there.\n"
          f"Take the tuned model home as a library:\n"
          f"  gta compile --model {out}/model.onnx --target {args.target} --db {out}/gta "
          f"--out model.so")
    return 0


def cmd_mappings(args: argparse.Namespace) -> int:
    report = api.mappings(args.spec, args.target, check=args.check,
                          progress=lambda text: print(text, file=sys.stderr))
    if args.json:
        _print_json(report)
        return 0
    kept = sum(m.status == "kept" for m in report.mappings)
    print(f"{report.workload} on {report.target}: {len(report.mappings)} candidates, {kept} kept")
    rows = []
    for m in report.mappings:
        axes = " ".join(f"{v}<-{'*'.join(names)}" for v, names in m.axes.items()) + (
            " (rfactor)" if m.rfactor else "")
        padding = " ".join(f"{v}:{e}" for v, e in m.padding.items()) or "-"
        roles = " ".join(f"{k}={t}" for k, t in m.operands.items())
        note = m.reason or (f"checked, {m.gops:.1f} G/s untuned" if m.checked
                            else "compiled, not run (no GPU here)" if m.compiled else "")
        rows.append([m.id, m.status, axes, roles, padding, f"{m.waste:.0%}", note])
    print(_table(rows, ["id", "status", "axes", "operands", "padding", "waste", "reason"]))
    return 0


def cmd_codegen(args: argparse.Namespace) -> int:
    from .codegen import codegen

    result = codegen(args.spec, args.out, target=args.target, mapping=args.mapping,
                     arch=args.arch, db=args.db, seed=args.seed,
                     progress=lambda text: print(text, file=sys.stderr))
    if args.json:
        _print_json(result)
        return 0
    where = (f"best record in the DB ({result.latency_us:.1f} us)" if result.origin == "database"
             else f"sampled, seed {result.seed}")
    print(f"{result.source}: {result.workload} on {result.target} {result.arch or ''}, mapping "
          f"{result.mapping} ({where}); {', '.join(result.instructions)}")
    return 0


def cmd_peak(args: argparse.Namespace) -> int:
    report = api.peak(args.target, progress=lambda text: print(text, file=sys.stderr))
    if args.json:
        _print_json(report)
        return 0
    rows = []
    for row in report.peaks:
        m = row.measurement
        unit = "GOPS" if "int" in row.dtypes.split(" -> ")[0] else "GFLOP/s"
        rows.append([row.intrinsic, row.dtypes, f"{m.gops:.1f} {unit}" if m else "not measured",
                     f"{m.spread:.1%}" if m else "-", str(m.cores) if m else "-"])
    print(f"peak throughput of {report.target} intrinsics on this machine (median of repeats)")
    print(_table(rows, ["intrinsic", "dtypes", "peak", "spread", "cores"]))
    for row in report.peaks:
        if row.measurement is None and row.skipped:
            print(f"{row.intrinsic} not measured: {row.skipped}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .measure.offline import RoundWritten
    from .tuning import tune

    measure = measure_settings(args)
    if args.report:
        report_path = Path(args.report)
        if not report_path.parent.is_dir():
            raise TuneError(f"--report {args.report}: folder {report_path.parent} does not exist")
    if bool(args.model) == bool(args.specs):
        raise UsageError("tune takes workload specs or --model FILE.onnx, one of the two")
    if args.model and (args.weights or args.report or args.arch):
        raise UsageError("--weights, --report and --arch are for specs; a model's functions "
                         "are weighted by how often it calls them")
    if args.warm_caches and not args.model:
        raise UsageError("--warm-caches is for --model: workload specs are timed with warm "
                         "caches already")
    if args.flush_to and (args.warm_caches or not args.model):
        raise UsageError("--flush-to is for --model, whose functions are timed with caches "
                         "flushed (not with --warm-caches)")
    try:
        with _TuneProgress(enabled=not args.quiet) as progress:
            if args.model:
                report = cmd_tune_model(args, progress.update)
            else:
                report = tune(args.specs, args.target, args.trials, args.db,
                              weights=args.weights, arch=args.arch,
                              time_budget=args.time_budget, scheduler=args.scheduler,
                              measure=measure, progress=progress.update,
                              cost_model=args.cost_model)
    except RoundWritten as written:
        print(f"{written}; measure it on the GPU: python3 benchmarks/gpu_check/run_on_gpu.py "
              f"--kernels {written.path} --out {written.path}, then run this command again")
        return 0
    if args.model:
        if report is not None:
            _print_json(report)
        return 0
    if args.report:
        from .tuning_report import write_report

        write_report(report, args.db, args.report)
    if args.json:
        _print_json(report)
        return 0
    rows = []
    for task in report.tasks:
        unit = api.load_workload(task.workload).unit
        dropped = sum(m.dropped for m in task.mappings)
        rows.append([task.workload, task.mapping or "-",
                     f"{task.latency_us:.1f}" if task.latency_us else "-",
                     f"{task.gflops:.1f} {unit}" if task.gflops else "-",
                     f"{task.trials} ({task.new_trials} new)",
                     f"{len(task.mappings)} ({dropped} dropped)",
                     {True: "yes", False: "NO", None: "-"}[task.correct],
                     ", ".join(f"{k}: {v}" for k, v in task.pruned.items()) or "-"])
    print(_table(rows, ["workload", "best mapping", "latency_us", "throughput", "trials",
                        "mappings", "correct", "pruned before measuring"]))
    checked = sum(t.checked for t in report.tasks)
    if checked:
        seconds = sum(t.check_seconds for t in report.tasks)
        print(f"{checked} new trials checked against numpy ({seconds / checked:.3f} s each); "
              f"{sum(t.wrong for t in report.tasks)} wrong, "
              f"{sum(t.failed for t in report.tasks)} failed to build or run")
    if report.cost_model_failure:
        print(f"cost model {report.cost_model} raised ({report.cost_model_failure}); the rest "
              "of the run ranked candidates at random", file=sys.stderr)
    for task in report.tasks:
        for left in task.left_out:
            print(f"{task.workload}: left out {left.kind} {left.name} of plugin {left.plugin} "
                  f"(it raised {left.cause})", file=sys.stderr)
    print(f"{report.seconds:.0f} s; ended by {report.ended_by}"
          + (f"; report in {args.report}" if args.report else ""))
    return 0


class _TuneProgress:
    """A rich progress bar on stderr: trials of the budget, best so far, elapsed time."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.progress = None

    def __enter__(self) -> _TuneProgress:
        return self

    def update(self, event) -> None:
        if not self.enabled:
            return
        if self.progress is None:  # started at the first batch: errors before it stay one line
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[best]}"),
                                     TimeElapsedColumn(), console=Console(stderr=True))
            self.progress.start()
            self.bar = self.progress.add_task("", total=event.budget, best="")
        best = f"best {event.flops / event.best_us / 1e3:.1f} G/s" if event.best_us else ""
        self.progress.update(self.bar, completed=event.done, best=best,
                             description=f"{event.subgraph} {event.mapping}")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gta", description="Generate tensorized programs with GTA.")
    parser.add_argument("--version", action="version", version=f"gta {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    plugins = commands.add_parser("plugins", help="loaded plugins and what they bring")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(run=cmd_plugins)
    add_check_plugin_command(commands)

    describe = commands.add_parser("describe", help="a workload's tensors, work and intrinsics")
    describe.add_argument("spec", help="workload spec, e.g. gemm:M=512,N=512,K=512,dtype=int8")
    describe.add_argument("--target", help="list this target's intrinsics for the workload")
    describe.add_argument("--json", action="store_true", help="print JSON")
    describe.set_defaults(run=cmd_describe)

    maps = commands.add_parser("mappings", help="every way to map a workload onto intrinsics")
    maps.add_argument("spec", help="workload spec, e.g. conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3")
    maps.add_argument("--target", required=True, help="target whose intrinsics to map onto")
    maps.add_argument("--check", action="store_true",
                      help="realise and build each kept candidate; on a CPU also run it "
                           "against numpy (a GPU candidate is only compiled)")
    maps.add_argument("--json", action="store_true", help="print JSON")
    maps.set_defaults(run=cmd_mappings)

    tune = commands.add_parser("tune", help="tune workloads on a target, resumably")
    tune.add_argument("specs", nargs="*", metavar="SPEC", help="workload specs")
    add_model_options(tune, required=False)
    tune.add_argument("--target", required=True, help="target to tune for")
    tune.add_argument("--trials", required=True, type=_positive_int,
                      help="measurements in all, over every workload and mapping")
    tune.add_argument("--db", required=True, help="directory of tuning records (resumable)")
    tune.add_argument("--time-budget", type=_positive_float, metavar="SECONDS",
                      help="stop after this many seconds, or at --trials, whichever comes first")
    tune.add_argument("--weights", metavar="W1,W2,...",
                      help="how often each workload occurs in the application (default 1 each)")
    tune.add_argument("--report", metavar="FILE.md",
                      help="write what the scheduler did, with tuning curves, to FILE.md")
    tune.add_argument("--arch", help="one of the target's declared architectures (e.g. sm_90)")
    tune.add_argument("--scheduler", choices=["dual", "even"], default="dual",
                      help="dual-task scheduling (default) or an even split, for comparison")
    tune.add_argument("--rpc", help="measure through a TVM RPC tracker: tracker=HOST:PORT,key=KEY")
    tune.add_argument("--measure-offline", type=Path, metavar="DIR",
                      help="measure elsewhere, in rounds: take back DIR's measured rounds, "
                           "write the next round of candidates (CUDA source and launches) to "
                           "DIR/round-N and stop; a GPU runs benchmarks/gpu_check/"
                           "run_on_gpu.py on it")
    tune.add_argument("--build-timeout", type=_positive_float, metavar="SECONDS",
                      help="a candidate's build fails after this long (default 300)")
    tune.add_argument("--run-timeout", type=_positive_float, metavar="SECONDS",
                      help="a candidate's timing run fails after this long (default 60)")
    tune.add_argument("--warm-caches", action="store_true",
                      help="with --model: time each function with warm caches, not flushed "
                           "of its weights as in the model's run")
    tune.add_argument("--flush-to", choices=("memory", "llc", "auto"),
                      help="with --model: where each function's weights are before a timed "
                           "run: memory (each core's own caches overwritten, then TVM's "
                           "clflush), llc (each core's own caches overwritten, the "
                           "last-level cache kept, as when the model fits there) or auto "
                           "(llc where the model fits half the last-level cache, else "
                           "memory; the default)")
    tune.add_argument("--cost-model", default="xgb", metavar="NAME",
                      help="the registered cost model that ranks candidates (default xgb; "
                           "gta plugins lists the loaded ones)")
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.add_argument("--json", action="store_true", help="print JSON")
    tune.set_defaults(run=cmd_tune)

    code = commands.add_parser("codegen", help="CUDA source of a tensorized program for a GPU")
    code.add_argument("spec", help="workload spec, e.g. gemm:M=1024,N=1024,K=1024,dtype=float16")
    code.add_argument("--target", required=True, help="GPU target, e.g. cuda-tc")
    code.add_argument("--out", required=True, help="the .cu file to write")
    code.add_argument("--mapping", help="use this mapping candidate (an id gta mappings lists)")
    code.add_argument("--arch", help="architecture the target declares, e.g. sm_90")
    code.add_argument("--db", help="tuning records: use the best one recorded for the workload")
    code.add_argument("--seed", type=_positive_int, default=1,
                      help="first seed to sample a schedule with (default 1)")
    code.add_argument("--json", action="store_true", help="print JSON")
    code.set_defaults(run=cmd_codegen)

    add_compile_command(commands)
    add_stages_command(commands)

    peak = commands.add_parser("peak", help="measured throughput of each intrinsic")
    peak.add_argument("--target", required=True, help="target whose intrinsics to measure")
    peak.add_argument("--json", action="store_true", help="print JSON")
    peak.set_defaults(run=cmd_peak)

    bench = commands.add_parser("bench", help="GTA side by side with MetaSchedule, PyTorch, "
                                "numpy and the peak on a suite")
    chosen = bench.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--suite",
                        help=", ".join([*SUITES, *NET_SUITES]) + " (net-*: whole models)")
    chosen.add_argument("--workload", action="append", metavar="SPEC",
                        help="a workload of your own instead of a suite, e.g. "
                             "conv2d:N=1,C=64,H=56,W=56,K=128,R=3,S=3,stride=2,pad=1,"
                             "dtype=float32; repeat for more (default budget: the ops suite's)")
    bench.add_argument("--trials", type=_positive_int,
                       help="trials per workload for each tuning contender (default: the "
                            "suite's budget)")
    bench.add_argument("--baselines",
                       help="comma-separated contenders beside gta (default: all)")
    bench.add_argument("--repeat", type=_positive_int, default=5,
                       help="interleaved timing rounds; medians are reported (default 5)")
    bench.add_argument("--out", help="directory of results and tuning records (resumable; "
                                     "default bench-SUITE, bench-workloads for --workload)")
    bench.add_argument("--target", default="avx512", help="CPU target (default: avx512)")
    bench.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS",
                       help="before timing a workload, wait up to this long for other "
                            "processes to leave the cores idle (default 60; 0: do not wait)")
    bench.add_argument("--first", type=int, metavar="N",
                       help="only the suite's first N workloads (a big suite in parts: a "
                            "later run without it tunes only the rest)")
    bench.add_argument("--one-process", action="store_true",
                       help="time every contender in this process (default: each in a "
                            "process of its own, so no library's idle threads stall another)")
    bench.add_argument("--json", action="store_true", help="print results.json")
    bench.set_defaults(run=cmd_bench)

    demo = commands.add_parser(
        "demo", help="tune and compile a small model on this CPU, timed beside onnxruntime, "
                     "PyTorch and TVM untuned")
    demo.add_argument("--target", default="avx512", help="CPU target (default: avx512)")
    demo.add_argument("--model", default=api.DEMO_MODEL,
                      help=f"a model of the offline zoo (default {api.DEMO_MODEL})")
    demo.add_argument("--trials", type=_positive_int,
                      help=f"trials for the whole model (default {api.DEMO_TRIALS})")
    demo.add_argument("--out", default="gta-demo",
                      help="keep the model, records and results here (default gta-demo)")
    demo.add_argument("--json", action="store_true", help="print results.json")
    demo.set_defaults(run=cmd_demo)
    return parser


_RESUME = "every record and result written so far is kept; rerun the same command to resume"


def main(argv: Sequence[str] | None = None) -> int:
    with interrupts.handled():
        try:
            args = build_parser().parse_args(argv)
            problem = environment_error() or plugins_env_error()
            if problem is not None:
                raise UsageError(problem)
            return args.run(args)
        except (UsageError, *USER_ERRORS) as exc:
            print(f"gta: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            if interrupts.received() == signal.SIGTERM:
                print(f"gta: terminated (SIGTERM); {_RESUME}", file=sys.stderr)
                return 128 + signal.SIGTERM
            print(f"gta: interrupted (SIGINT); {_RESUME}", file=sys.stderr)
            return 128 + signal.SIGINT
        except BrokenPipeError:  # `gta ... | head` stopped reading: not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
            return 0


def run() -> None:
    """The ``gta`` command: :func:`main` on the command line, its status as the exit status."""
    interrupts.exit_with(main())


if __name__ == "__main__":
    run()
