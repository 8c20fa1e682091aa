"""Tuning the two tuners of the network suites at the same total budget, resumably.

- GTA: ``gta tune --model`` into ``OUT/gta`` (its records count toward the budget, so a run
  killed half-way resumes where it stopped);
- MetaSchedule: ``tune_relax`` on the same fused module into ``OUT/metaschedule``, with the
  builder and runner GTA measures with, its constant weights marked layout-free (TVM's
  ``cpu_weight_prepack`` configuration: MetaSchedule may re-lay them, and
  :func:`compile_metaschedule` does that once at compile time, as GTA's compile does). Its
  task scheduler does not count earlier records, so a run that did not finish is started
  again from an empty directory.

``OUT/tuned.json`` keeps, per tuner, the trials, the seconds spent (summed over GTA's runs)
and the commit it ran at.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from ..frontends import Model, fuse, written_bytes
from ..measure import (
    MeasureSettings,
    flushed_to_fit,
    make_builder,
    make_runner,
    model_settings,
)
from ..measure.runners import closed_after
from ..models import Target

TUNED = "tuned.json"


def metaschedule_dir(out: str | Path) -> Path:
    return Path(out) / "metaschedule"


def gta_report_path(out: str | Path) -> Path:
    """GTA's last tuning report of the model (per function: weight, mapping, latency)."""
    return Path(out) / "gta-report.json"


def tuned_state(out: str | Path) -> dict[str, Any]:
    path = Path(out) / TUNED
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save(out: str | Path, state: dict[str, Any]) -> None:
    path = Path(out) / TUNED
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(state, indent=1))
    partial.replace(path)  # never a half-written file


def tune_gta(model: Model, target: str, trials: int, out: str | Path,
             measure: MeasureSettings | None = None, progress=None) -> dict[str, Any]:
    from ..model_tuning import tune_model
    from .tuned import code_version

    state = tuned_state(out)
    report = tune_model(model, target, trials, Path(out) / "gta", measure=measure,
                        progress=progress)
    gta_report_path(out).write_text(report.model_dump_json(indent=1))
    done = sum(t.tuned.trials for t in report.tasks)
    previous = state.get("gta", {})
    # the code that ran the trials: a resumed run with none left to do keeps the earlier one's
    code = previous.get("code") if done == previous.get("trials") else None
    state["gta"] = {"trials": done, "budget": trials, "code": code or code_version(),
                    "seconds": previous.get("seconds", 0.0) + report.seconds}
    _save(out, state)
    return state["gta"]


def tune_metaschedule(model: Model, target: Target, trials: int, out: str | Path,
                      measure: MeasureSettings | None = None) -> dict[str, Any]:
    from tvm.s_tir import meta_schedule as ms

    from .tuned import code_version

    state = tuned_state(out)
    entry = state.get("metaschedule")
    if entry and entry.get("trials") == trials:
        return entry
    where = metaschedule_dir(out)
    shutil.rmtree(where, ignore_errors=True)  # an unfinished run starts again (see above)
    where.mkdir(parents=True)
    start = time.perf_counter()
    mod = _layout_free(model)
    # as GTA's functions are timed
    measure = flushed_to_fit(measure or model_settings(),
                             model.footprint_bytes() + written_bytes(mod),
                             target.resources.cache_bytes)
    per_round = trials_per_round(trials, len(ms.relax_integration.extract_tasks(
        mod, target.tvm_target())))
    with closed_after(make_builder(measure)) as builder:
        ms.relax_integration.tune_relax(
            mod, {}, target.tvm_target(), str(where), max_trials_global=trials,
            num_trials_per_iter=per_round, builder=builder, runner=make_runner(measure, target))
    state["metaschedule"] = {"trials": trials, "budget": trials, "code": code_version(),
                             "seconds": time.perf_counter() - start,
                             "trials_per_round": per_round}
    _save(out, state)
    return state["metaschedule"]


def trials_per_round(trials: int, tasks: int) -> int:
    """MetaSchedule's trials per task round: its default 64, fewer when the budget would
    not give every task a round. Its task scheduler first gives each task one round in
    turn, and a task without one keeps plain loops: at 64, 300 trials tune 5 of
    ResNet-18's 19 tasks. Half the budget spread over every task, 8 at least."""
    return max(8, min(64, trials // max(1, 2 * tasks)))


def _layout_free(model: Model):
    """The model fused as GTA fuses it, its constant weights marked layout-free."""
    from tvm import relax

    return relax.transform.AttachAttrLayoutFreeBuffers()(fuse(model.mod))


def compile_metaschedule(model: Model, target: Target, out: str | Path):
    """The model with MetaSchedule's records in ``OUT/metaschedule`` applied, its weight
    layout rewrites run once on the constants, built as GTA's models are."""
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    from ..model_compile import build_fused

    database = ms.database.JSONDatabase(work_dir=str(metaschedule_dir(out)))
    with target.tvm_target(), database:
        scheduled = relax.transform.MetaScheduleApplyDatabase()(_layout_free(model))
    return build_fused(scheduled, target)
