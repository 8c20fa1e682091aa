"""The plugin conformance kit: what ``gta check-plugin NAME`` runs, and a plugin's tests can.

::

    from gta_core.sdk import check_plugin
    import my_accelerator.plugin

    def test_conforms():
        check_plugin(my_accelerator.plugin)

The plugin is loaded into a fresh plugin manager beside the core's built-ins (and,
``with_installed``, beside the installed plugins, for a rule pack or for intrinsics of
another plugin's target), then checked:

- **load**: it registers without failures, for an SDK version this core provides;
- **hooks**: every hook it implements is a documented GTA hook;
- per intrinsic: its **target** is loaded; its **TVM intrinsics** are registered by its
  ``tvm_module``; its declared **compute** equals its TVM description; it is **realised** on
  a small workload of each operator family it maps, built, and where this machine runs the
  target, checked against numpy (``gta_core.intrinsic_check``);
- per rule and constraint: a docstring, and a **run on real design spaces** (the sample
  workloads on every loaded target's intrinsics) without raising.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Literal

from pydantic import BaseModel

from . import hookspecs
from .plugins import ENTRY_POINT_GROUP, Registry, load

Status = Literal["passed", "failed", "skipped"]


class CheckResult(BaseModel):
    check: str  # what was checked, e.g. "intrinsic vnni: compute"
    status: Status
    detail: str = ""


class ConformanceReport(BaseModel):
    plugin: str
    api_version: str | None  # what the plugin declares (GTA_API_VERSION), if anything
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    @property
    def problems(self) -> list[str]:
        return [f"{r.check}: {r.detail}" for r in self.results if r.status == "failed"]


class ConformanceError(AssertionError):
    """The plugin does not conform; the message lists every problem."""


class UnknownPlugin(LookupError):
    """No installed plugin has that name; the message names the installed ones."""


def check_plugin(plugin: object, name: str = "plugin-under-test",
                 with_installed: bool = False, run_programs: bool = True) -> Registry:
    """Check ``plugin``; return the registry it was loaded into, or raise
    :class:`ConformanceError` listing every failed check. ``run_programs`` False skips
    realising intrinsics and exercising rules (the quick, registration-only checks)."""
    registry, report = conformance_report(plugin, name, with_installed, run_programs)
    if not report.ok:
        raise ConformanceError(f"{name} does not conform:\n  " + "\n  ".join(report.problems))
    return registry


def check_installed(name: str, run_programs: bool = True) -> ConformanceReport:
    """Check the installed plugin ``name`` (its distribution or entry-point name), loaded
    beside the other installed plugins."""
    found = {(ep.dist.name if ep.dist is not None else ep.name): ep
             for ep in entry_points(group=ENTRY_POINT_GROUP)}
    matches = [dist for dist, ep in found.items() if name in (dist, ep.name)]
    if not matches:
        raise UnknownPlugin(f"no installed plugin is called {name!r}; installed: "
                            f"{', '.join(sorted(found)) or 'none'}")
    dist = matches[0]
    try:
        plugin = found[dist].load()
    except Exception as exc:  # noqa: BLE001 - reported as the load check
        return ConformanceReport(plugin=dist, api_version=None, results=[CheckResult(
            check="load", status="failed", detail=f"{type(exc).__name__}: {exc}")])
    others = ",".join(d for d in found if d != dist)
    return _report(plugin, dist, {"GTA_PLUGINS": others}, run_programs)[1]


def conformance_report(plugin: object, name: str = "plugin-under-test",
                       with_installed: bool = False, run_programs: bool = True
                       ) -> tuple[Registry, ConformanceReport]:
    """Every check on ``plugin`` (see the module's docstring), failed or not."""
    return _report(plugin, name, None if with_installed else {"GTA_PLUGINS": ""}, run_programs)


def _report(plugin: object, name: str, environ: dict | None, run_programs: bool
            ) -> tuple[Registry, ConformanceReport]:
    registry = load(environ=environ, extra=[(name, plugin)])
    results = [_load_result(registry, name)]
    info = registry.plugins.get(name)
    if info is not None:
        results.append(_hooks_result(info.hooks))
        results += _intrinsic_results(registry, info.registered.get("intrinsics", []),
                                      run_programs)
        results += _rule_results(registry, info.registered, run_programs)
    return registry, ConformanceReport(
        plugin=name, api_version=getattr(plugin, "GTA_API_VERSION", None), results=results)


def _load_result(registry: Registry, name: str) -> CheckResult:
    failures = [f"{f.stage}: {f.cause}" for f in registry.failures if f.plugin == name]
    if name not in registry.plugins and not failures:
        failures = ["the plugin was not loaded"]
    if failures:
        return CheckResult(check="load", status="failed", detail="; ".join(failures))
    registered = registry.plugins[name].registered
    return CheckResult(check="load", status="passed", detail="registered " + ", ".join(
        f"{kind.replace('_', ' ')} {', '.join(names)}" for kind, names in registered.items()))


def _hooks_result(hooks: list[str]) -> CheckResult:
    undocumented = [h for h in hooks if not (getattr(hookspecs, h).__doc__ or "").strip()]
    if undocumented:
        return CheckResult(check="hooks", status="failed",
                           detail=f"no documentation for {', '.join(undocumented)}")
    return CheckResult(check="hooks", status="passed", detail=", ".join(hooks) or "none")


def _intrinsic_results(registry: Registry, names: list[str], run_programs: bool
                       ) -> list[CheckResult]:
    from .intrinsic_check import compare_compute, realised_samples

    results = []
    for intrinsic_name in names:
        intrinsic = registry.intrinsics[intrinsic_name]
        label = f"intrinsic {intrinsic_name}"
        if intrinsic.target not in registry.targets:
            results.append(CheckResult(check=f"{label}: target", status="failed",
                                       detail=f"target {intrinsic.target!r} is not registered"))
            continue
        missing = _missing_tvm_intrinsics(intrinsic.tvm_module,
                                          list(intrinsic.tvm_intrinsics.values()))
        results.append(CheckResult(check=f"{label}: TVM intrinsics",
                                   status="failed" if missing else "passed",
                                   detail=missing or ", ".join(intrinsic.tvm_intrinsics.values())))
        if missing:
            continue
        status, detail = compare_compute(intrinsic)
        results.append(CheckResult(check=f"{label}: compute", status=status, detail=detail))
        if not run_programs:
            continue
        target = registry.targets[intrinsic.target]
        samples = realised_samples(intrinsic, target, registry)
        if not samples:
            results.append(CheckResult(check=f"{label}: realised", status="skipped",
                                       detail="maps none of the sample workloads"))
        for s in samples:
            status = {"checked": "passed", "compiled": "passed", "failed": "failed"}.get(
                s.status, "skipped")
            detail = f"{s.status} ({s.mapping})" if status == "passed" else s.detail
            results.append(CheckResult(check=f"{label}: realised on {s.spec}", status=status,
                                       detail=detail))
    return results


def _missing_tvm_intrinsics(module: str | None, names: list[str]) -> str:
    if not names:
        return ""
    if module is None:
        return "names TVM intrinsics but no tvm_module registers them"
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"tvm_module {module} does not import ({exc})"
    from tvm.s_tir import TensorIntrin

    absent = [n for n in names if TensorIntrin.get(n, allow_missing=True) is None]
    return f"{module} does not register {', '.join(absent)}" if absent else ""


def _rule_results(registry: Registry, registered: dict[str, list[str]], run_programs: bool
                  ) -> list[CheckResult]:
    from .rule_check import exercise

    results = []
    objects = {(kind, n): getattr(registry, f"{kind}s")[n]
               for kind in ("rule", "constraint") for n in registered.get(f"{kind}s", [])}
    for (kind, obj_name), obj in objects.items():
        if not (type(obj).__doc__ or "").strip():
            results.append(CheckResult(check=f"{kind} {obj_name}: docstring", status="failed",
                                       detail="no docstring to describe it"))
    if run_programs and objects:
        for (kind, obj_name), (status, detail) in exercise(registry, objects).items():
            results.append(CheckResult(check=f"{kind} {obj_name}: on design spaces",
                                       status=status, detail=detail))
    return results
