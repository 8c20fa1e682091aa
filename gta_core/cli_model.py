"""The ``gta`` commands for whole models: ``gta tune --model`` and ``gta compile --model``."""

from __future__ import annotations

import argparse

from pydantic import BaseModel


def _load(args: argparse.Namespace):
    from .frontends import load_onnx, parse_input_shapes

    return load_onnx(args.model, parse_input_shapes(args.input_shape))


NAME_WIDTH = 64


def _short(name: str) -> str:
    """A fused function's name cut for a table: a quantized layer's runs to 170 characters
    (every requantization op is in it); ``--json`` has them whole."""
    return name if len(name) <= NAME_WIDTH else name[:NAME_WIDTH - 1] + "…"


def _us(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _checked(tuned) -> str:
    if tuned is None or not tuned.trials:
        return "no trial yet"
    return "yes" if tuned.correct else "NO: no program found correct"


def cmd_tune_model(args: argparse.Namespace, progress) -> BaseModel:
    """Tune the model of ``args.model``; prints the per-function table unless ``--json``."""
    from .model_tuning import tune_model

    measure = measure_settings(args)
    report = tune_model(_load(args), args.target, args.trials, args.db,
                        time_budget=args.time_budget, scheduler=args.scheduler,
                        measure=measure, progress=progress, cost_model=args.cost_model)
    if args.json:
        return report
    total = sum((t.latency_us or 0.0) * t.weight for t in report.tasks)
    rows = []
    for task in report.tasks:
        tuned = task.tuned
        latency = task.latency_us
        speedup = (task.untuned_us / latency if task.untuned_us and latency and tuned
                   and tuned.correct else None)
        share = latency * task.weight / total if latency and total else None
        rows.append([_short(task.name), str(task.weight), (tuned.mapping if tuned else None) or "-",
                     f"{tuned.trials}" if tuned else "-", _us(task.untuned_us), _us(latency),
                     f"{speedup:.1f}x" if speedup else "-",
                     f"{share:.0%}" if share is not None else "-",
                     task.why or _checked(tuned)])
    from .cli import _table

    print(_table(rows, ["function", "weight", "mapping", "trials", "untuned_us", "latency_us",
                        "speedup", "share", "checked / why not tuned"]))
    print(f"{report.model}: {len(report.tasks)} functions, sum of latencies x weights "
          f"{total / 1e3:.2f} ms; {report.seconds:.0f} s; ended by {report.ended_by}")
    if report.quantized:
        print(f"{report.model}: {report.quantized}")
    return None


def cmd_compile(args: argparse.Namespace) -> int:
    from .cli import UsageError, _print_json, _table
    from .model_compile import compile_model, compile_specs

    if bool(args.model) == bool(args.specs):
        raise UsageError("compile takes workload specs or --model FILE.onnx, one of the two")
    if args.specs:
        _, compiled = compile_specs(args.specs, args.target, args.db, args.out)
        if args.json:
            _print_json(compiled)
            return 0
        print(_table([[f.workload, f.function, f.mapping or "-", _us(f.tuned_us),
                       f.prepack or "-"] for f in compiled.functions],
                     ["workload", "function", "mapping", "tuned_us", "weights laid out by"]))
        print(f"each checked against numpy; wrote {compiled.out}")
        return 0
    _, report = compile_model(_load(args), args.target, args.db, args.out)
    if args.json:
        _print_json(report)
        return 0
    rows = [[_short(f.name), f.schedule, f.mapping or "-", _us(f.tuned_us), f.why or ""]
            for f in report.functions]
    print(_table(rows, ["function", "schedule", "mapping", "tuned_us", "why default"]))
    if report.quantized:
        from .quantized_check import describe

        agreement = describe(report.quantized)
    else:
        agreement = f"within {report.max_error:.3g} (tolerance {report.tolerance:.3g})"
    print(f"{report.model}: outputs match {report.checked_against}: {agreement}; "
          f"wrote {report.out}")
    return 0


def net_contenders(baselines: str | None, suite: str) -> list[str]:
    """GTA and the ``--baselines`` named (every contender of ``suite`` when none), each once."""
    from .bench import parse_baselines
    from .bench.networks import suite_contenders

    if not baselines:
        return list(suite_contenders(suite))
    return list(dict.fromkeys(["gta", *parse_baselines(baselines)]))


def cmd_bench_network(args: argparse.Namespace) -> int:
    """``gta bench --suite net-*``: a whole model, every contender side by side."""
    from .bench.networks import markdown, run_network_bench
    from .cli import _print_json, _stderr_log

    contenders = net_contenders(args.baselines, args.suite)
    out = args.out or f"bench-{args.suite}"
    report = run_network_bench(args.suite, out, trials=args.trials or 1000,
                               contenders=contenders, target=args.target, repeat=args.repeat,
                               quiet_wait_s=args.quiet_wait, progress=_stderr_log())
    if args.json:
        _print_json(report)
        return 0
    print(markdown(report))
    print(f"{report.seconds:.0f} s; results.json and results.md in {out}")
    return 0


def measure_settings(args: argparse.Namespace):
    """The builder and runner settings ``gta tune``'s flags ask for: a model's functions
    timed with caches flushed, as the model runs them (to where ``--flush-to`` says), unless
    ``--warm-caches``."""
    from .measure import MeasureSettings, model_settings, parse_rpc

    given = {"build_timeout_s": args.build_timeout, "run_timeout_s": args.run_timeout}
    offline = getattr(args, "measure_offline", None)
    if args.rpc and offline:
        from .cli import UsageError

        raise UsageError("--rpc and --measure-offline are two places to measure: pick one")
    settings = MeasureSettings(rpc=parse_rpc(args.rpc) if args.rpc else None, offline=offline,
                               **{k: v for k, v in given.items() if v is not None})
    if not args.model or args.warm_caches:
        return settings
    flushed = model_settings(settings)
    return flushed.model_copy(update={"flush_to": args.flush_to}) if args.flush_to else flushed


def add_model_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--model", required=required, metavar="FILE.onnx",
                        help="an ONNX model: tune or compile its fused functions")
    parser.add_argument("--input-shape", action="append", metavar="NAME=DxDx...",
                        help="shape of an input the model leaves open (repeatable)")


def add_compile_command(commands) -> None:
    compile_ = commands.add_parser("compile", help="tuned programs as a library: a model's "
                                   "(relax.VirtualMachine runs it) or workloads' (one function "
                                   "each)")
    compile_.add_argument("specs", nargs="*", metavar="SPEC", help="workload specs")
    add_model_options(compile_, required=False)
    compile_.add_argument("--target", default="avx512", help="CPU target (default: avx512)")
    compile_.add_argument("--db", required=True, help="directory of tuning records")
    compile_.add_argument("--out", required=True, metavar="FILE.so",
                          help="the library to write")
    compile_.add_argument("--json", action="store_true", help="print JSON")
    compile_.set_defaults(run=cmd_compile)
