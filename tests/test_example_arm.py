"""The third-party Arm target in examples/: programs cross-compiled for AArch64, its design
spaces included, with the dot-product instructions it declares in their assembly."""

from __future__ import annotations

import re

import pytest

from gta_core.intrinsic_check import runs_here, sample_mappings


@pytest.fixture(scope="module")
def registry(arm_registry):
    return arm_registry


def test_it_is_not_run_on_this_machine(registry):
    assert not runs_here(registry.targets["arm-i8mm"])


@pytest.mark.parametrize("intrinsic, instruction", [
    ("neon-usdot", r"\busdot\s+v\d+\.4s, v\d+\.16b, v\d+\.16b"),
    ("neon-fma", r"\bfmla\s+v\d+\.4s"),
    ("neon-sdot", r"\bsdot\s+v\d+\.4s"),  # int8_s8s8 workloads
    ("neon-udot", r"\budot\s+v\d+\.4s"),  # int8_u8u8 workloads
])
def test_tuned_design_spaces_build_for_aarch64_with_the_instruction(registry, intrinsic,
                                                                    instruction):
    import tvm

    from gta_core.measure.check import build
    from gta_core.scheduler.space import MappingSpace, Task

    target = registry.targets["arm-i8mm"]
    workload, candidate = sample_mappings(registry.intrinsics[intrinsic], target, registry)[0]
    task = Task(workload, candidate, registry.intrinsics[intrinsic], target)
    left_out: dict = {}
    space = MappingSpace(task, list(registry.rules.values()), [], left_out=left_out)
    sketches = space.generate_design_space(tvm.IRModule({"main": task.workload.prim_func()}))
    assert sketches and not left_out
    for sch in sketches:
        asm = build(sch.mod, target).mod.inspect_source("asm")
        assert re.search(instruction, asm), candidate.id
        assert not re.search(r"%[xy]mm\d|\bvpdpbusd\b", asm)  # nothing x86
