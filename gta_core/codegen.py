"""``gta codegen``: the CUDA source of a realised, scheduled program for a GPU target.

The program is the best one recorded for the workload in a tuning DB when one is given and
has one; otherwise a schedule sampled from the generation rules' design space of a kept
mapping that passes every constraint (seeds are tried in turn until one does).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from .models import MappingCandidate, Target, UnknownArch
from .plugins import Registry, default_registry
from .workloads import Workload

# Tensor Core instructions, as they appear in generated CUDA source.
TENSOR_CORE_INSTRUCTIONS = ("wmma::mma_sync", "mma.sync")


class CodegenError(ValueError):
    """A codegen request that cannot be served as given; the message is one line."""


class CodegenResult(BaseModel):
    """What ``gta codegen`` wrote, and from what."""

    workload: str
    target: str
    arch: str | None
    mapping: str
    origin: Literal["database", "sampled"]
    seed: int | None  # the sampling seed (origin "sampled")
    latency_us: float | None  # the record's measured latency (origin "database")
    source: str  # path of the .cu file written
    instructions: list[str]  # tensor-core instructions found in the source


def codegen(spec: str, out: str | os.PathLike, *, target: str = "cuda-tc",
            mapping: str | None = None, arch: str | None = None,
            db: str | os.PathLike | None = None, seed: int = 1, attempts: int = 16,
            registry: Registry | None = None,
            progress: Callable[[str], None] | None = None) -> CodegenResult:
    """Write the CUDA source of ``spec`` on GPU ``target`` (for ``arch``) to ``out``.

    ``mapping`` limits the program to one mapping candidate (by id); ``db`` is a tuning
    record directory whose best record for the workload is used when it has one. Otherwise
    seeds ``seed``, ``seed + 1``... (``attempts`` of them per mapping) sample the mapping's
    design space until a schedule passes every constraint and builds.
    """
    from .api import load_workload

    registry = registry or default_registry()
    say = progress or (lambda _text: None)
    workload = load_workload(spec, registry)
    chosen = _gpu_target(registry, target, arch)
    _check_writable(Path(out))
    candidates = _candidates(workload, target, mapping, registry)
    program = None
    if db is not None:
        program = _best_recorded(workload, chosen, candidates, db, registry)
    if program is None:
        program = _sampled(workload, chosen, candidates, seed, attempts, registry, say)
    sch, candidate, origin, used_seed, latency = program
    source = _cuda_source(sch, chosen)
    found = [name for name in TENSOR_CORE_INSTRUCTIONS if name in source]
    if not found:
        raise CodegenError(f"the program of mapping {candidate.id} has no tensor-core "
                           "instruction in its CUDA source")
    Path(out).write_text(source)
    return CodegenResult(workload=workload.spec, target=chosen.name, arch=chosen.arch,
                         mapping=candidate.id, origin=origin, seed=used_seed,
                         latency_us=latency, source=str(out), instructions=found)


def _gpu_target(registry: Registry, name: str, arch: str | None) -> Target:
    chosen = registry.target(name)  # UnknownTarget names the loaded ones
    if chosen.kind != "gpu":
        gpus = ", ".join(t.name for t in registry.targets.values() if t.kind == "gpu") or "none"
        raise CodegenError(f"target {name} is a {chosen.kind} target; codegen writes CUDA for "
                           f"GPU targets (loaded: {gpus})")
    try:
        return chosen.for_arch(arch)
    except UnknownArch as exc:
        raise CodegenError(str(exc)) from None


def _check_writable(path: Path) -> None:
    """CodegenError now, before any work, if ``path`` cannot be written."""
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise CodegenError(f"--out {path}: cannot write there ({exc.strerror or exc})") from None
    if not existed:
        path.unlink()


def _candidates(workload: Workload, target: str, mapping: str | None,
                registry: Registry) -> list[MappingCandidate]:
    from .mapping import mapping_candidates

    every = mapping_candidates(workload, target, registry)
    kept = [c for c in every if c.status == "kept"]
    if mapping is None:
        if not kept:
            raise CodegenError(f"{workload.spec} has no kept mapping on {target} "
                               f"(see gta mappings '{workload.spec}' --target {target})")
        return kept
    found = next((c for c in every if c.id == mapping), None)
    if found is None:
        raise CodegenError(f"unknown mapping {mapping!r} for {workload.spec} on {target}; "
                           f"kept: {', '.join(c.id for c in kept) or 'none'}")
    if found.status != "kept":
        raise CodegenError(f"mapping {mapping} is pruned: {found.reason}")
    return [found]


def _best_recorded(workload: Workload, target: Target, candidates: list[MappingCandidate],
                   db: str | os.PathLike, registry: Registry):
    """(schedule, candidate, "database", None, latency) of the fastest good record, or None."""
    from .database import RecordStore
    from .scheduler.space import Task

    if not Path(db).is_dir():
        raise CodegenError(f"--db {db}: no such directory")
    store = RecordStore(db)
    best = None
    for candidate in candidates:
        task = Task(workload, candidate, registry.intrinsics[candidate.intrinsic], target)
        record = store.best(task.key)
        if record is not None and (best is None or record.latency_us < best[1].latency_us):
            best = (candidate, record)
    if best is None:
        return None
    candidate, record = best
    return store.schedule(record), candidate, "database", None, record.latency_us


def _sampled(workload: Workload, target: Target, candidates: list[MappingCandidate],
             seed: int, attempts: int, registry: Registry, say: Callable[[str], None]):
    """(schedule, candidate, "sampled", seed, None): the first sample that fits and builds."""
    import tvm
    from tvm.s_tir import Schedule, Trace

    from .scheduler.space import MappingSpace, Task

    rules = list(registry.rules.values())
    constraints = list(registry.constraints.values())
    why: Counter = Counter()
    for candidate in candidates:
        task = Task(workload, candidate, registry.intrinsics[candidate.intrinsic], target)
        space = MappingSpace(task, rules, constraints)
        mod = tvm.IRModule({"main": task.workload.prim_func()})
        sketches = space.generate_design_space(mod)
        if not sketches:
            why["no design space"] += 1
            continue
        for attempt in range(seed, seed + attempts):
            sketch = sketches[(attempt - seed) % len(sketches)]
            sch = Schedule(mod, seed=attempt)
            # Without its decisions, replaying the sketch samples them anew from the seed.
            Trace(sketch.trace.insts, {}).apply_to_schedule(sch, remove_postproc=True)
            before = Counter(space.pruned)
            if not space.check.apply(sch):
                why.update(space.pruned - before)
                continue
            try:
                _cuda_source(sch, target)
            except Exception as exc:  # noqa: BLE001 - a sample that fails to build is skipped
                why[f"build failed: {str(exc).strip().splitlines()[-1][:120]}"] += 1
                continue
            say(f"codegen: mapping {candidate.id}, seed {attempt} "
                f"({attempt - seed} rejected before it)")
            return sch, candidate, "sampled", attempt, None
        say(f"codegen: no sample of mapping {candidate.id} passed in {attempts} seeds")
    reasons = ", ".join(f"{k}: {v}" for k, v in why.most_common()) or "none"
    raise CodegenError(f"no sampled schedule of {workload.spec} passed the constraints "
                       f"({len(candidates)} mapping(s), {attempts} seeds each; rejected by "
                       f"{reasons})")


def _cuda_source(sch, target: Target) -> str:
    """The CUDA C source TVM generates for ``sch`` (built without running: no GPU needed)."""
    from .measure import build

    # Where a CUDA runtime is loaded TVM also compiles the source; its default, nvrtc, needs
    # Python CUDA bindings the project does not install.
    os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    return build(sch.mod, target).mod.imports[0].inspect_source()
