"""``gta stages``: where a tuned program's time goes, stage by stage."""

from __future__ import annotations

import argparse


def add_stages_command(commands) -> None:
    from .cli_model import add_model_options

    stages = commands.add_parser(
        "stages", help="where tuned programs' time goes: packing, init, compute, write-back "
                       "and epilogue timed by the cycle counter, against the peak")
    stages.add_argument("specs", nargs="*", metavar="SPEC", help="workload specs")
    add_model_options(stages, required=False)
    stages.add_argument("--function", action="append", metavar="NAME",
                        help="with --model: only functions whose name contains NAME "
                             "(repeatable; default: every function GTA scheduled)")
    stages.add_argument("--target", default="avx512", help="CPU target (default: avx512)")
    stages.add_argument("--db", required=True, help="directory of tuning records")
    stages.add_argument("--no-peak", action="store_true",
                        help="do not measure the intrinsics' peak (saves a few seconds)")
    stages.add_argument("--json", action="store_true", help="print JSON")
    stages.set_defaults(run=cmd_stages)


def cmd_stages(args: argparse.Namespace) -> int:
    from .cli import UsageError, _print_json
    from .cli_model import _load
    from .stage_report import markdown, model_stages, spec_stages

    if bool(args.model) == bool(args.specs):
        raise UsageError("stages takes workload specs or --model FILE.onnx, one of the two")
    if args.function and not args.model:
        raise UsageError("--function names a model's functions: give --model FILE.onnx")
    if args.specs:
        report = spec_stages(args.specs, args.target, args.db, peak=not args.no_peak)
    else:
        report = model_stages(_load(args), args.target, args.db, args.function,
                              peak=not args.no_peak)
    if args.json:
        _print_json(report)
    else:
        print("\n".join(markdown(report)))
    return 0
