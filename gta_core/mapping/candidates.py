"""All mapping candidates of a workload on a target: enumerated, added and vetoed by plugins."""

from __future__ import annotations

from ..models import MappingCandidate
from ..plugins import RegistrationError, Registry, validator
from ..workloads import Workload

_validate = validator(MappingCandidate)


def mapping_candidates(workload: Workload, target: str,
                       registry: Registry) -> list[MappingCandidate]:
    """Every candidate for ``workload`` on ``target``'s intrinsics, in a stable order.

    Each plugin's ``gta_mapping_candidates`` adds candidates (the core's
    enumerator is one of them); each is then checked by the mapping-level
    constraints (e.g. padding waste) and offered to every ``gta_mapping_veto``;
    the first reason given prunes it.
    """
    chosen = registry.target(target)
    found: dict[str, MappingCandidate] = {}
    for intrinsic in registry.intrinsics_for(target):
        arguments = {"workload": workload, "intrinsic": intrinsic, "target": chosen}
        for plugin, proposed in registry.call_each("gta_mapping_candidates", **arguments):
            for candidate in proposed or []:
                try:
                    candidate = _validate(candidate)
                except RegistrationError as exc:
                    registry.record_failure(plugin, "gta_mapping_candidates", str(exc))
                    continue
                if plugin not in registry.builtin_names:
                    candidate = candidate.model_copy(update={"source": plugin})
                found.setdefault(candidate.id, candidate)
        for candidate in [c for c in found.values() if c.intrinsic == intrinsic.name]:
            if candidate.status != "kept":
                continue
            reason = _constraint_reason(candidate, chosen, registry)
            if reason:
                found[candidate.id] = candidate.model_copy(
                    update={"status": "pruned", "reason": reason})
                continue
            for plugin, reason in registry.call_each("gta_mapping_veto", candidate=candidate,
                                                     **arguments):
                if reason:
                    found[candidate.id] = candidate.model_copy(update={
                        "status": "pruned", "reason": f"vetoed by {plugin}: {reason}"})
                    break
    return list(found.values())


def _constraint_reason(candidate: MappingCandidate, target, registry: Registry) -> str | None:
    """The first mapping-level constraint that rejects ``candidate``, as its reason."""
    for constraint in registry.constraints.values():
        if constraint.applies(target):
            reason = constraint.check_mapping(candidate, target)
            if reason:
                return reason
    return None
