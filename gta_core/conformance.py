"""A conformance kit a plugin author runs on their plugin.

::

    from gta_core.conformance import check_plugin
    import my_accelerator.plugin

    def test_conforms():
        check_plugin(my_accelerator.plugin)

It loads the plugin into a fresh plugin manager beside the core's built-ins
(and, for intrinsics of other plugins' targets, beside the installed
plugins), then checks what it registered.
"""

from __future__ import annotations

import importlib

from .plugins import Registry, load


class ConformanceError(AssertionError):
    """The plugin does not conform; the message lists every problem."""


def check_plugin(plugin: object, name: str = "plugin-under-test",
                 with_installed: bool = False) -> Registry:
    """Load ``plugin`` and check it; returns the registry on success.

    Checks: the plugin loads without failures; every intrinsic's target is
    registered (by the plugin itself, or by an installed plugin when
    ``with_installed``); every intrinsic's ``tvm_module`` imports and registers
    each TVM tensor intrinsic it names; rules and constraints have docstrings.
    """
    environ = {} if with_installed else {"GTA_PLUGINS": ""}
    registry = load(environ=environ, extra=[(name, plugin)])
    problems = [f"{f.stage}: {f.cause}" for f in registry.failures if f.plugin == name]
    info = registry.plugins.get(name)
    if info is None:
        problems.append("the plugin was not loaded")
    else:
        problems += _check_contents(registry, info.registered)
    if problems:
        raise ConformanceError(f"{name} does not conform:\n  " + "\n  ".join(problems))
    return registry


def _check_contents(registry: Registry, registered: dict[str, list[str]]) -> list[str]:
    problems = []
    for intrinsic_name in registered.get("intrinsics", []):
        intrinsic = registry.intrinsics[intrinsic_name]
        if intrinsic.target not in registry.targets:
            problems.append(f"intrinsic {intrinsic.name}: target {intrinsic.target!r} is not "
                            "registered")
        if intrinsic.tvm_intrinsics:
            problems += _check_tvm_intrinsics(intrinsic.name, intrinsic.tvm_module,
                                              intrinsic.tvm_intrinsics.values())
    for attribute in ("rules", "constraints"):
        for obj_name in registered.get(attribute, []):
            if not (type(getattr(registry, attribute)[obj_name]).__doc__ or "").strip():
                problems.append(f"{attribute[:-1]} {obj_name}: no docstring to describe it")
    return problems


def _check_tvm_intrinsics(owner: str, module: str | None, names) -> list[str]:
    if module is None:
        return [f"intrinsic {owner}: names TVM intrinsics but no tvm_module registers them"]
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [f"intrinsic {owner}: tvm_module {module} does not import ({exc})"]
    from tvm.s_tir import TensorIntrin

    return [f"intrinsic {owner}: {module} does not register {tvm_name}"
            for tvm_name in names if TensorIntrin.get(tvm_name, allow_missing=True) is None]
