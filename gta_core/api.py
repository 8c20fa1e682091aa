"""The Python API the ``gta`` command is a thin shell over."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from .host import cannot_run, require_runs_here, runs_here
from .mapping import mapping_candidates
from .mapping.realise import RealisationError, realise
from .measure import build, measure_program
from .models import (
    Intrinsic,
    MappingCandidate,
    PeakMeasurement,
    PeakSkipped,
    PluginFailure,
    Target,
)
from .plugins import Registry, default_registry
from .workloads import Workload, parse_workload

if TYPE_CHECKING:
    from .bench.networks import NetBenchReport


class NamedSummary(BaseModel):
    name: str
    description: str


class TargetSummary(NamedSummary):
    kind: str
    cannot_run: str | None = None  # why its programs cannot run on this CPU (None: they can)


class IntrinsicSummary(NamedSummary):
    target: str
    shape: dict[str, int]
    inputs: list[str]
    output: str
    tvm_intrinsics: dict[str, str]

    @property
    def dtypes(self) -> str:
        """E.g. ``uint8 x int8 -> int32``."""
        return " x ".join(self.inputs) + " -> " + self.output


class PluginEntry(BaseModel):
    name: str
    version: str
    builtin: bool
    api_version: str | None = None  # the gta_core.sdk version it was written for, if declared
    hooks: list[str]
    targets: list[TargetSummary]
    intrinsics: list[IntrinsicSummary]
    operators: list[NamedSummary]
    rules: list[NamedSummary]
    constraints: list[NamedSummary]
    cost_models: list[NamedSummary]


class PluginsReport(BaseModel):
    """What ``gta plugins`` shows: loaded plugins, what each brings, failures."""

    plugins: list[PluginEntry]
    failures: list[PluginFailure]


def _summary(obj: object) -> str:
    """An object's own description, else the first line of its class docstring."""
    text = getattr(obj, "description", None) or type(obj).__doc__ or ""
    return text.strip().splitlines()[0] if text.strip() else ""


def _target_summary(target: Target) -> TargetSummary:
    return TargetSummary(name=target.name, description=target.description, kind=target.kind,
                         cannot_run=cannot_run(target))


def intrinsic_summary(intrinsic: Intrinsic) -> IntrinsicSummary:
    """One intrinsic as ``gta plugins`` lists it: its target, its iteration shape and its
    operand and result dtypes."""
    compute = intrinsic.compute
    return IntrinsicSummary(
        name=intrinsic.name,
        description=intrinsic.description,
        target=intrinsic.target,
        shape={v.name: v.extent for v in compute.iter_vars},
        inputs=[o.dtype for o in compute.inputs],
        output=compute.output.dtype,
        tvm_intrinsics=intrinsic.tvm_intrinsics,
    )


def plugins_report(registry: Registry | None = None) -> PluginsReport:
    """What ``gta plugins`` prints: every loaded plugin with its version, its hooks and
    what it registered (targets, intrinsics, operators, rules, constraints, cost models),
    and the plugins that failed to load, each with its reason."""
    registry = registry or default_registry()
    entries = []
    for info in registry.plugins.values():
        names = info.registered

        def named(attribute: str, names=names) -> list[NamedSummary]:
            table = getattr(registry, attribute)
            return [NamedSummary(name=n, description=_summary(table[n]))
                    for n in names.get(attribute, [])]

        entries.append(PluginEntry(
            name=info.name, version=info.version, builtin=info.builtin, hooks=info.hooks,
            api_version=info.api_version,
            targets=[_target_summary(registry.targets[n]) for n in names.get("targets", [])],
            intrinsics=[intrinsic_summary(registry.intrinsics[n])
                        for n in names.get("intrinsics", [])],
            operators=named("operators"), rules=named("rules"),
            constraints=named("constraints"), cost_models=named("cost_models"),
        ))
    return PluginsReport(plugins=entries, failures=list(registry.failures))


def load_workload(spec: str, registry: Registry | None = None) -> Workload:
    """Parse a workload spec against the loaded operators (SpecError if bad)."""
    registry = registry or default_registry()
    return parse_workload(spec, registry.operators)


class TensorSummary(BaseModel):
    name: str
    shape: list[int]
    dtype: str
    role: str


class WorkloadReport(BaseModel):
    """What ``gta describe`` shows about a workload (and a target's intrinsics for it)."""

    workload: str
    operator: str
    inputs: list[TensorSummary]
    output: TensorSummary
    flops: int
    target: str | None = None
    intrinsics: list[IntrinsicSummary] = []


def describe(spec: str, target: str | None = None,
             registry: Registry | None = None) -> WorkloadReport:
    """A workload's tensors and work; with ``target``, the intrinsics whose dtypes fit it."""
    registry = registry or default_registry()
    workload = load_workload(spec, registry)
    operator, params = workload.operator, workload.params
    inputs = [TensorSummary(name=t.name, shape=list(t.shape), dtype=t.dtype, role=t.role)
              for t in operator.inputs(params)]
    report = WorkloadReport(
        workload=workload.spec,
        operator=operator.name,
        inputs=inputs,
        output=TensorSummary(name="out", shape=list(workload.output_shape),
                             dtype=params.acc_dtype, role="output"),
        flops=workload.flops,
    )
    if target is not None:
        registry.target(target)  # UnknownTarget names the loaded ones
        dtypes = sorted(t.dtype for t in inputs)
        fitting = [i for i in registry.intrinsics_for(target)
                   if sorted(i.input_dtypes) == dtypes and i.output_dtype == params.acc_dtype]
        report.target = target
        report.intrinsics = [intrinsic_summary(i) for i in fitting]
    return report


DEMO_MODEL = "resnet18-128"
DEMO_TRIALS = 48  # with set-up, `make demo` stays within ~5 min on 2 cores
DEMO_CONTENDERS = ["gta", "tvm-untuned", "onnxruntime", "torch"]


def demo(target: str = "avx512", trials: int | None = None, out: str = "gta-demo",
         model: str = DEMO_MODEL, progress=None) -> NetBenchReport:
    """GTA's main job, in a few minutes on this CPU: a model of the offline zoo tuned
    briefly (``trials``, default 48), compiled, its outputs checked against onnxruntime's,
    and its latency timed beside onnxruntime's, PyTorch's and TVM's untuned build.

    This is ``gta bench --suite net-MODEL`` with a small budget and three timing rounds.
    The ONNX file, the tuning records and the results stay in ``out``, so a second run
    resumes from them.
    """
    from .bench.networks import run_network_bench

    return run_network_bench(f"net-{model}", out, trials=trials or DEMO_TRIALS,
                             contenders=DEMO_CONTENDERS, target=target, repeat=3,
                             quiet_wait_s=10.0, progress=progress)


class CheckedCandidate(MappingCandidate):
    """A candidate as ``gta mappings`` reports it; with ``--check``, realised and built, and
    where its target runs here, run against numpy: ``compiled`` says it built, ``checked``
    that its output matched the reference (never set where nothing runs the target here: a
    GPU target, or a CPU target using instructions this CPU lacks)."""

    compiled: bool = False
    checked: bool = False
    gops: float | None = None  # untuned throughput of the realised program, when checked


class MappingsReport(BaseModel):
    workload: str
    target: str
    mappings: list[CheckedCandidate]


def mappings(spec: str, target: str, check: bool = False, registry: Registry | None = None,
             progress=None) -> MappingsReport:
    """Every mapping candidate of ``spec`` on ``target``'s intrinsics.

    With ``check``, each kept candidate is realised in TensorIR and built
    (``compiled``); on a CPU target that runs here it is also run, output filled with
    garbage first, and compared with the numpy reference (``checked``). A GPU candidate, or
    one of a CPU target this CPU cannot run, is only compiled. A candidate that fails is
    reported pruned, with the failing step as reason.
    """
    registry = registry or default_registry()
    workload = load_workload(spec, registry)
    chosen = registry.target(target)
    rows = []
    for candidate in mapping_candidates(workload, target, registry):
        row = CheckedCandidate(**candidate.model_dump())
        if check and row.status == "kept":
            if progress is not None:
                progress(f"checking {row.id}")
            row = _check(workload, row, registry.intrinsics[row.intrinsic], chosen)
        rows.append(row)
    return MappingsReport(workload=workload.spec, target=target, mappings=rows)


def _check(workload: Workload, row: CheckedCandidate, intrinsic: Intrinsic,
           target: Target) -> CheckedCandidate:
    try:
        realised = realise(workload, row, intrinsic, target)
        if not runs_here(target):  # a GPU's, or a CPU's this one cannot run: built only
            build(realised.sch.mod, target)
            return row.model_copy(update={"compiled": True})
        result = measure_program(realised.sch.mod, workload, target, number=1, repeat=3)
    except RealisationError as exc:
        return row.model_copy(update={"status": "pruned", "reason": str(exc)})
    except Exception as exc:  # noqa: BLE001 - a build failure prunes the candidate, with why
        first = str(exc).strip().splitlines()
        reason = f"build failed: {first[-1] if first else type(exc).__name__}"
        return row.model_copy(update={"status": "pruned", "reason": reason})
    if not result.correct:
        return row.model_copy(update={"status": "pruned",
                                      "reason": f"wrong result: {result.mismatch}"})
    return row.model_copy(update={"compiled": True, "checked": True, "gops": result.gflops})


class PeakRow(BaseModel):
    intrinsic: str
    dtypes: str
    measurement: PeakMeasurement | None = None
    skipped: str | None = None  # why the plugin owning the intrinsic does not measure it


class PeakReport(BaseModel):
    """What ``gta peak`` shows: each intrinsic's measured throughput on this machine."""

    target: str
    peaks: list[PeakRow]


class NothingMeasured(Exception):
    """No plugin could measure any intrinsic of the target here; the message is one line."""


def peak(target: str, registry: Registry | None = None, progress=None) -> PeakReport:
    """Measure every intrinsic of ``target`` through the ``gta_intrinsic_peak`` hook; a CPU
    intrinsic no plugin answers for is measured by the core's generic kernel
    (:mod:`gta_core.measure.generic_peak`)."""
    registry = registry or default_registry()
    chosen = registry.target(target)
    require_runs_here(chosen)  # a plugin's peak kernel is the target's own program
    rows = []
    for intrinsic in registry.intrinsics_for(target):
        answers = registry.call_each("gta_intrinsic_peak", intrinsic=intrinsic, target=chosen)
        measured = next((m for _, m in answers if isinstance(m, PeakMeasurement)), None)
        skipped = next((m.reason for _, m in answers if isinstance(m, PeakSkipped)), None)
        if measured is None and skipped is None and chosen.kind == "cpu":
            # no plugin measures it: the core's kernel, from the declaration alone
            from .measure.generic_peak import measure_generic_peak

            generic = measure_generic_peak(intrinsic, chosen)
            measured = generic if isinstance(generic, PeakMeasurement) else None
            skipped = generic.reason if isinstance(generic, PeakSkipped) else None
        if progress is not None and measured is not None:
            progress(f"{intrinsic.name}: {measured.gops:.1f} G/s")
        if progress is not None and measured is None and skipped:
            progress(f"{intrinsic.name}: not measured ({skipped})")
        summary = intrinsic_summary(intrinsic)
        rows.append(PeakRow(intrinsic=intrinsic.name,
                            dtypes=summary.dtypes,
                            measurement=measured,
                            skipped=None if measured else skipped))
    if not any(row.measurement for row in rows):
        raise NothingMeasured(f"no installed plugin can measure the intrinsics of {target} on "
                              f"this machine{' (it needs a GPU)' if chosen.kind == 'gpu' else ''}")
    return PeakReport(target=target, peaks=rows)
