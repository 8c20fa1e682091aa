"""Plugin manager: finds plugins, collects what they register, isolates failures.

Plugins come from the entry-point group ``gta`` (one per installed
distribution such as ``gta-avx512``) plus the core's built-in plugin modules,
which use the same hooks. ``GTA_PLUGINS=gta-avx512,gta-rules`` limits which
installed plugins load (``GTA_PLUGINS=`` loads none); built-ins always load.

Every plugin is run in isolation: one that fails to import, raises in a hook
or registers a malformed object is recorded as a :class:`PluginFailure` with
its name and the cause, everything it registered is dropped, and loading goes
on with the others.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points, version
from typing import Any

import pluggy
from pydantic import BaseModel, ValidationError

from . import hookspecs
from .cost_model import CostModelEntry
from .generation import GenerationRule
from .generation.engine import describe as _describe
from .models import Intrinsic, PluginFailure, Target
from .pruning import Constraint
from .sdk import compatible
from .workloads import Operator

ENTRY_POINT_GROUP = "gta"
ENV_VAR = "GTA_PLUGINS"
BUILTIN_MODULES = {
    "gta-core.workloads": "gta_core.workloads.builtin",
    "gta-core.cost-model": "gta_core.cost_model.builtin",
    "gta-core.mapping": "gta_core.mapping.builtin",
    "gta-core.generation": "gta_core.generation.builtin",
    "gta-core.pruning": "gta_core.pruning.builtin",
}


class RegistrationError(ValueError):
    """A plugin registered something the core cannot use."""


def validator(model: type[BaseModel]) -> Callable[[Any], Any]:
    """A check that turns what a plugin handed over into ``model``, or RegistrationError."""

    def validate(obj: Any) -> Any:
        # Dump and re-validate so objects made with model_construct() are checked too.
        data = obj.model_dump() if isinstance(obj, model) else obj
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise RegistrationError(
                f"malformed {model.__name__}{' at ' + where if where else ''}: {error['msg']}"
            ) from None

    return validate


def _validate_instance(base: type) -> Callable[[Any], Any]:
    def validate(obj: Any) -> Any:
        if not isinstance(obj, base):
            raise RegistrationError(f"expected a {base.__name__} instance, got {obj!r}")
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise RegistrationError(f"{type(obj).__name__} has no name")
        return obj

    return validate


def _validate_operator(obj: Any) -> Operator:
    operator = _validate_instance(Operator)(obj)
    if not (isinstance(operator.Params, type) and issubclass(operator.Params, BaseModel)):
        raise RegistrationError(f"operator {operator.name!r}: Params is not a pydantic model")
    return operator


@dataclass(frozen=True)
class _Kind:
    hook: str
    attribute: str  # the Registry dict it fills
    validate: Callable[[Any], Any]


# In load order: targets first, so that everything after can refer to them.
KINDS = (
    _Kind("gta_register_targets", "targets", validator(Target)),
    _Kind("gta_register_intrinsics", "intrinsics", validator(Intrinsic)),
    _Kind("gta_register_workloads", "operators", _validate_operator),
    _Kind("gta_register_rules", "rules", _validate_instance(GenerationRule)),
    _Kind("gta_register_constraints", "constraints", _validate_instance(Constraint)),
    _Kind("gta_register_cost_models", "cost_models", validator(CostModelEntry)),
)


@dataclass
class PluginInfo:
    """One loaded plugin and what it brought."""

    name: str
    version: str
    builtin: bool
    hooks: list[str]
    registered: dict[str, list[str]]  # Registry attribute -> names
    api_version: str | None = None  # the SDK version it declares (GTA_API_VERSION)


@dataclass
class Registry:
    """Everything the loaded plugins registered, by name."""

    manager: pluggy.PluginManager
    targets: dict[str, Target] = field(default_factory=dict)
    intrinsics: dict[str, Intrinsic] = field(default_factory=dict)
    operators: dict[str, Operator] = field(default_factory=dict)
    rules: dict[str, GenerationRule] = field(default_factory=dict)
    constraints: dict[str, Constraint] = field(default_factory=dict)
    cost_models: dict[str, CostModelEntry] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)

    def target(self, name: str) -> Target:
        """The target called ``name``; :class:`UnknownTarget` names the loaded ones."""
        try:
            return self.targets[name]
        except KeyError:
            raise UnknownTarget(name, sorted(self.targets)) from None

    @property
    def builtin_names(self) -> set[str]:
        return {name for name, info in self.plugins.items() if info.builtin}

    def owner(self, attribute: str, name: str) -> str | None:
        """The plugin that registered ``name`` in ``attribute`` (``rules``, ``constraints``...)."""
        return _owner(self, attribute, name)

    def intrinsics_for(self, target: str) -> list[Intrinsic]:
        return [i for i in self.intrinsics.values() if i.target == target]

    def call_each(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook``, isolating failures.

        Returns ``(plugin name, result)`` for each implementation that returned
        without raising; one that raises is recorded in :attr:`failures` (once
        per distinct cause) and skipped.
        """
        results = []
        for impl in reversed(getattr(self.manager.hook, hook).get_hookimpls()):
            try:
                results.append((impl.plugin_name, impl.function(
                    *(kwargs[arg] for arg in impl.argnames))))
            except Exception as exc:  # noqa: BLE001 - a plugin's bug must not stop the run
                self.record_failure(impl.plugin_name, hook, _describe(exc))
        return results

    def record_failure(self, plugin: str, stage: str, cause: str) -> None:
        failure = PluginFailure(plugin=plugin, stage=stage, cause=cause)
        if failure not in self.failures:
            self.failures.append(failure)
            print(f"gta: plugin {plugin} failed in {stage}: {cause}", file=sys.stderr)


class UnknownTarget(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.message = (f"unknown target {name!r}; loaded targets: {', '.join(known) or 'none'}"
                        " (install a target plugin, e.g. pip install ./plugins/gta_avx512)")

    def __str__(self) -> str:
        return self.message


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    return manager


def enabled_from_env(environ: Mapping[str, str] | None = None) -> set[str] | None:
    """Plugin names ``GTA_PLUGINS`` enables, or None when it is unset (all)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _distribution(ep) -> str:
    """The name of the distribution that installed entry point ``ep`` (its own name if none)."""
    return ep.dist.name if ep.dist is not None else ep.name


def _installed_plugins() -> list[str]:
    return sorted({_distribution(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)})


def _not_installed(name: str) -> str:
    return (f"{ENV_VAR} names {name!r}, which is not installed; installed: "
            f"{', '.join(_installed_plugins()) or 'none'}")


def plugins_env_error(environ: Mapping[str, str] | None = None) -> str | None:
    """Why ``GTA_PLUGINS`` cannot be used (it names a plugin that is not installed), or
    None. The CLI refuses such a setting at once rather than run without the plugin."""
    enabled = enabled_from_env(environ)
    if not enabled:
        return None
    names = {n for ep in entry_points(group=ENTRY_POINT_GROUP)
             for n in (ep.name, _distribution(ep))}
    missing = sorted(enabled - names)
    return _not_installed(missing[0]) if missing else None


def load(
    environ: Mapping[str, str] | None = None,
    extra: Iterable[tuple[str, object]] = (),
) -> Registry:
    """Load the built-ins, the installed plugins ``GTA_PLUGINS`` allows, and ``extra``.

    ``extra`` is ``(name, plugin object)`` pairs registered after the others,
    which is how tests and the conformance kit add a plugin without
    installing it.
    """
    manager = new_manager()
    registry = Registry(manager)
    versions: dict[str, tuple[str, bool]] = {}
    core_version = version("gta-core") if _installed("gta-core") else "dev"
    for name, module in BUILTIN_MODULES.items():
        manager.register(importlib.import_module(module), name=name)
        versions[name] = (core_version, True)

    enabled = enabled_from_env(environ)
    found = set()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        name = _distribution(ep)
        found |= {name, ep.name}
        if enabled is not None and not {name, ep.name} & enabled:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - isolate a broken plugin
            registry.record_failure(name, "import", _describe(exc))
            continue
        if not _register(registry, name, plugin):
            continue
        versions[name] = (ep.dist.version if ep.dist is not None else "unknown", False)
    for missing in sorted((enabled or set()) - found):
        registry.record_failure(missing, "enable", _not_installed(missing))

    for name, plugin in extra:
        if _register(registry, name, plugin):
            versions[name] = ("unknown", False)

    for name, plugin in list(manager.list_name_plugin()):
        _collect(registry, name, plugin, *versions.get(name, ("unknown", False)))
    return registry


def _register(registry: Registry, name: str, plugin: object) -> bool:
    """Add ``plugin`` to the manager if it was written for this SDK; False (and a recorded
    failure) if not, or if pluggy refuses it."""
    declared = getattr(plugin, "GTA_API_VERSION", None)
    why = compatible(declared) if declared is not None else None
    if why is not None:
        registry.record_failure(name, "api-version", why)
        return False
    try:
        registry.manager.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - e.g. a hook pluggy does not know
        registry.record_failure(name, "register", _describe(exc))
        return False
    return True


def _collect(registry: Registry, name: str, plugin: object, version_: str, builtin: bool) -> None:
    """Run one plugin's register hooks; merge its objects only if all succeed."""
    staged: dict[str, dict[str, Any]] = {kind.attribute: {} for kind in KINDS}
    unknown = sorted(
        attr for attr in dir(plugin)
        if attr.startswith("gta_") and not hasattr(hookspecs, attr)
        and registry.manager.parse_hookimpl_opts(plugin, attr) is not None
    )
    if unknown:  # most often a typo, which would otherwise be silently never called
        registry.record_failure(name, unknown[0], f"{unknown[0]} is not a GTA hook; hooks: "
                                + ", ".join(h for h in dir(hookspecs) if h.startswith("gta_")))
        registry.manager.unregister(plugin)
        return
    hooks = sorted(impl.name for impl in registry.manager.get_hookcallers(plugin) or [])
    for kind in KINDS:
        impl = next((i for i in getattr(registry.manager.hook, kind.hook).get_hookimpls()
                     if i.plugin is plugin), None)
        if impl is None:
            continue
        errors: list[str] = []

        def register(obj: Any, kind: _Kind = kind, errors: list[str] = errors) -> None:
            try:
                obj = kind.validate(obj)
            except RegistrationError as exc:
                errors.append(str(exc))
                raise
            table = staged[kind.attribute]
            owner = _owner(registry, kind.attribute, obj.name)
            if obj.name in table or owner is not None:
                message = (f"{kind.attribute[:-1].replace('_', ' ')} {obj.name!r} is already "
                           f"registered by {owner or name}")
                errors.append(message)
                raise RegistrationError(message)
            table[obj.name] = obj

        try:
            impl.function(register)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug must not stop loading
            errors.append(_describe(exc) if not isinstance(exc, RegistrationError) else str(exc))
        if errors:
            registry.record_failure(name, kind.hook, errors[0])
            registry.manager.unregister(plugin)
            return
    for attribute, objects in staged.items():
        getattr(registry, attribute).update(objects)
    registry.plugins[name] = PluginInfo(
        name=name, version=version_, builtin=builtin, hooks=hooks,
        registered={a: list(objects) for a, objects in staged.items() if objects},
        api_version=getattr(plugin, "GTA_API_VERSION", None),
    )


def _owner(registry: Registry, attribute: str, name: str) -> str | None:
    for info in registry.plugins.values():
        if name in info.registered.get(attribute, ()):
            return info.name
    return None


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except Exception:  # noqa: BLE001 - PackageNotFoundError and broken metadata alike
        return False
    return True


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The registry of this process's environment, loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load()
    return _DEFAULT
