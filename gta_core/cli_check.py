"""``gta check-plugin NAME``: the conformance kit run on an installed plugin."""

from __future__ import annotations

import argparse


def add_check_plugin_command(commands) -> None:
    check = commands.add_parser(
        "check-plugin", help="check an installed plugin: registration, intrinsics against "
                             "TVM, programs built and run, rules and constraints exercised")
    check.add_argument("name", help="the plugin's distribution or entry-point name "
                                    "(gta plugins lists them), e.g. gta-avx512")
    check.add_argument("--quick", action="store_true",
                       help="registration checks only: realise nothing, exercise no rule")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(run=cmd_check_plugin)


def cmd_check_plugin(args: argparse.Namespace) -> int:
    """Exit 0 when every check passed or was skipped, 1 when one failed."""
    from .conformance import check_installed

    report = check_installed(args.name, run_programs=not args.quick)
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0 if report.ok else 1
    declared = report.api_version or "not declared"
    print(f"{report.plugin} (written for GTA plugin API {declared})")
    for r in report.results:
        print(f"  {r.status.upper():7} {r.check}" + (f": {r.detail}" if r.detail else ""))
    failed = sum(r.status == "failed" for r in report.results)
    print(f"{len(report.results)} checks: {failed} failed, "
          f"{sum(r.status == 'skipped' for r in report.results)} skipped")
    return 1 if failed else 0
