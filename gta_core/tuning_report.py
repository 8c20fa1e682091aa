"""``gta tune --report FILE.md``: what the dual-task scheduler did, with tuning curves.

Per subgraph: every mapping tried, the trials it got, the best latency it
reached, and which were dropped and why; and a PNG of best throughput against
trials, beside the same workload's MetaSchedule run when one is in the DB
(MetaSchedule writes its records without GTA's side fields).
"""

from __future__ import annotations

import os
from pathlib import Path

from .tuning import TaskReport, TuneReport


def curve(latencies: list[float | None], flops: int) -> list[float]:
    """Best throughput (G/s) after each trial; 0 until one succeeds."""
    best, out = None, []
    for latency in latencies:
        if latency is not None and (best is None or latency < best):
            best = latency
        out.append(flops / best / 1e3 if best else 0.0)
    return out


def curves(store, task: TaskReport, flops: int, mod, prefix: str) -> dict[str, list[float]]:
    """GTA's curve for ``task`` (records keyed ``prefix``...) over all its mappings, and
    MetaSchedule's where recorded."""
    gta = [r.latency_us if r.ok else None for r in store.records()
           if r.task is not None and r.task.startswith(prefix)]
    found = {"GTA": curve(gta, flops)}
    metaschedule = metaschedule_latencies(store.directory, mod)
    if metaschedule:
        found["MetaSchedule"] = curve(metaschedule, flops)
    return found


def metaschedule_latencies(directory: Path, mod) -> list[float | None]:
    """Latencies (us) of MetaSchedule's own trials of ``mod`` in ``directory``, in the order
    they were measured (None: failed).

    Found where ``ms.tune_tir(..., work_dir=DIR)`` writes its database
    (``database_workload.json``, ``database_tuning_record.json``); read line by
    line, since MetaSchedule's own reader returns them sorted by latency.
    """
    import statistics

    from .database import metaschedule_files
    from .database.formats import FAILED_RUN_SECS, normalize_mod, structural_hash

    wanted = structural_hash(normalize_mod(mod))
    ours = {number - 1 for number, entry in metaschedule_files.workloads(directory)
            if entry[0] == wanted}
    latencies: list[float | None] = []
    for _, (index, (_, run_secs, *_)) in metaschedule_files.records(directory):
        if index in ours:
            secs = [float(s) for s in run_secs or () if float(s) < FAILED_RUN_SECS]
            latencies.append(statistics.median(secs) * 1e6 if secs else None)
    return latencies


def plot(series: dict[str, list[float]], title: str, unit: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here, and none needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    for name, values in series.items():
        axes.plot(range(1, len(values) + 1), values, label=name)
    axes.set_xlabel("trials")
    axes.set_ylabel(f"best {unit}")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(report: TuneReport, db: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the markdown report to ``out`` and its PNG curves beside it."""
    import tvm

    from .database import RecordStore
    from .plugins import default_registry
    from .scheduler.space import task_prefix
    from .workloads import parse_workload

    out = Path(out)
    store = RecordStore(db)
    registry = default_registry()
    operators = registry.operators
    lines = [f"# Tuning report: {len(report.tasks)} workload(s)", "",
             f"Budget {report.trials} trials, scheduler `{report.scheduler}`, "
             f"{report.seconds:.0f} s; ended by {report.ended_by}.", ""]
    for index, task in enumerate(report.tasks, 1):
        workload = parse_workload(task.workload, operators)
        unit = workload.unit
        lines += [f"## {task.workload}", "",
                  f"Weight {task.weight:g}; {task.trials} trials ({task.new_trials} new); "
                  f"best mapping `{task.mapping or '-'}` at "
                  + (f"{task.latency_us:.1f} us ({task.gflops:.1f} {unit}); "
                     if task.latency_us else "- ; ")
                  + f"checked against numpy: {_checked(task)}.", "",
                  _trial_checks(task), "",
                  "| mapping | prior (x best) | trials | best latency (us) | best " + unit
                  + " | dropped | why |",
                  "|---|---:|---:|---:|---:|---|---|"]
        for m in sorted(task.mappings, key=lambda m: (m.best_latency_us is None,
                                                       m.best_latency_us or 0)):
            rate = f"{workload.flops / m.best_latency_us / 1e3:.1f}" if m.best_latency_us else "-"
            latency = f"{m.best_latency_us:.1f}" if m.best_latency_us else "-"
            prior = f"{m.prior:.2f}" if m.prior else "-"
            lines.append(f"| `{m.id}` | {prior} | {m.trials} | {latency} | {rate} | "
                         f"{'yes' if m.dropped else 'no'} | {m.why or ''} |")
        if task.retimed:
            lines += ["", f"Final pick: the {len(task.retimed)} fastest records built and "
                      "checked, the correct ones timed again side by side (median of the "
                      "samples; `gta_core.final_pick`):", "",
                      "| mapping | in tuning (us) | timed again (us) | samples | correct |",
                      "|---|---:|---:|---:|---|"]
            for c in task.retimed:
                again = f"{c.median_us:.1f}" if c.median_us else (c.error or "-")
                lines.append(f"| `{c.mapping}` | {c.tuned_us:.1f} | {again} | "
                             f"{len(c.samples_us)} | "
                             f"{ {True: 'yes', False: 'NO', None: '-'}[c.correct]} |")
        for left in task.left_out:
            lines += ["", f"Left out: {left.kind} `{left.name}` of plugin {left.plugin} raised "
                      f"`{left.cause}`; the mappings {', '.join(left.mappings)} were tuned "
                      "without it."]
        if task.pruned:
            lines += ["", "Pruned before measuring: "
                      + ", ".join(f"{k} {v}" for k, v in task.pruned.items()) + "."]
        prefix = task_prefix(task.workload, registry.target(task.target).for_arch(task.arch))
        series = curves(store, task, workload.flops,
                        tvm.IRModule({"main": workload.prim_func()}), prefix)
        png = out.with_name(f"{out.stem}-{index}.png")
        plot(series, task.workload, unit, png)
        lines += ["", f"![tuning curve of {task.workload}]({png.name})", ""]
    out.write_text("\n".join(lines) + "\n")
    return out


def _trial_checks(task: TaskReport) -> str:
    """What checking cost the new trials, and what it found."""
    if not task.checked:
        return ("New trials were not checked while tuning (measured elsewhere, or none new); "
                "the final pick checks what it times.")
    return (f"Every new trial's output was checked against numpy on the artifact it timed: "
            f"{task.checked} checked in {task.check_seconds:.1f} s "
            f"({task.check_seconds / task.checked:.3f} s a trial); {task.wrong} wrong, "
            f"{task.failed} failed to build or run.")


def _checked(task: TaskReport) -> str:
    if task.correct is None:
        return "not run on this machine" if task.latency_us else "no program measured"
    return "yes" if task.correct else "NO"
