"""A mapping's prior: its roofline cost before any trial, from its realised program."""

from __future__ import annotations

import pytest

from gta_core.api import load_workload
from gta_core.mapping import mapping_candidates
from gta_core.plugins import default_registry
from gta_core.scheduler.prior import STAGED_BYTES_PER_CYCLE
from gta_core.scheduler.space import Task


def priors(spec: str) -> dict[str, tuple[Task, float]]:
    registry = default_registry()
    target = registry.target("avx512")
    workload = load_workload(spec)
    tasks = [Task(workload, c, registry.intrinsics[c.intrinsic], target)
             for c in mapping_candidates(workload, "avx512", registry) if c.status == "kept"]
    return {t.mapping.id: (t, t.prior) for t in tasks}


def describe(task: Task) -> str:
    return f"{task.intrinsic.name} {task.mapping.axes}"


def test_the_prior_ranks_vnni_over_output_channels_first_and_the_narrow_intrinsic_last():
    found = priors("conv2d:N=1,C=16,H=8,W=8,K=16,R=3,S=3,pad=1,dtype=int8")
    ranked = sorted(found.values(), key=lambda tp: tp[1])
    best = ranked[0][0]
    assert best.intrinsic.name == "vnni" and best.mapping.axes == {"i": ["k"], "k": ["c"]}
    narrow = [p for t, p in found.values() if t.intrinsic.name.startswith("mac16")]
    unpadded_vnni = [p for t, p in found.values()
                     if t.intrinsic.name.startswith("vnni") and not t.mapping.waste]
    assert narrow and min(narrow) > max(unpadded_vnni)


@pytest.mark.parametrize("spec, intrinsic, lanes", [
    ("gemm:M=64,N=64,K=64,dtype=int8", "vnni", 64),
    ("gemm:M=64,N=48,K=32,dtype=float32", "fma", 16),
])
def test_the_prior_counts_one_cycle_per_call_and_the_staged_bytes(spec, intrinsic, lanes):
    load = load_workload(spec)
    for task, prior in priors(spec).values():
        if task.intrinsic.name != intrinsic:
            continue
        calls = load.flops // 2 // lanes  # nothing padded: the shapes divide the intrinsic
        staged = (prior - calls) * STAGED_BYTES_PER_CYCLE
        assert staged >= 0, describe(task)
        assert staged == int(staged) and staged < 4 * calls * lanes, describe(task)


def test_padding_raises_the_prior():
    found = priors("conv2d:N=1,C=16,H=8,W=8,K=16,R=3,S=3,pad=1,dtype=int8")
    by_axes = {(t.intrinsic.name, str(t.mapping.axes)): p for t, p in found.values()}
    # k <- r pads 3 to 4; k <- c*r covers 48 taps exactly
    assert by_axes["vnni", str({"i": ["k"], "k": ["r"]})] > \
        by_axes["vnni", str({"i": ["k"], "k": ["c", "r"]})]


def test_a_copy_the_rules_read_in_place_is_not_staged():
    """fma's broadcast scalar over a float32 conv2d's im2col form is read straight from the
    padded input (inline-contiguous-operands): its 9x copy adds nothing to the prior."""
    spec = "conv2d:N=1,C=16,H=8,W=16,K=16,R=3,S=3,pad=1,dtype=float32"
    [(task, prior)] = [(t, p) for t, p in priors(spec).values()
                       if t.intrinsic.name == "fma" and t.mapping.axes == {"i": ["k"]}]
    calls = load_workload(spec).flops // 2 // 16
    im2col = 16 * 9 * 8 * 16 * 4  # C*R*S x H*W float32
    assert calls < prior < calls + im2col / STAGED_BYTES_PER_CYCLE, describe(task)


def test_a_models_weight_packing_is_not_staged(model_makers, tmp_path):
    """A model's constant weight is packed once, while compiling: VNNI's re-laid int8
    weight (``[N/16, K/4, 16, 4]``) costs nothing before any trial, as it costs nothing
    per call."""
    import dataclasses

    from gta_core.frontends import fuse, load_onnx, model_tasks

    registry = default_registry()
    target = registry.target("avx512")
    float_path = model_makers.ffn(tmp_path / "f.onnx", tokens=16, hidden=32, inner=64)
    model = load_onnx(model_makers.quantized(float_path, tmp_path / "q.onnx"))
    cheaper = 0
    for task in model_tasks(fuse(model.mod)):
        if not task.workload.constant_inputs:
            continue
        for candidate in mapping_candidates(task.workload, "avx512", registry):
            if candidate.status != "kept":
                continue
            intrinsic = registry.intrinsics[candidate.intrinsic]
            constant = Task(task.workload, candidate, intrinsic, target).prior
            varying = Task(dataclasses.replace(task.workload, constant_inputs=frozenset()),
                           candidate, intrinsic, target).prior
            assert constant <= varying
            cheaper += intrinsic.name.startswith("vnni") and constant < varying
    assert cheaper
