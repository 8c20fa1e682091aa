"""Mapping enumeration and realisation: every candidate, and every realised one correct."""

from __future__ import annotations

import pytest

from gta_core.api import load_workload, mappings
from gta_core.hookspecs import hookimpl
from gta_core.mapping import enumerate_mappings, mapping_candidates
from gta_core.mapping.access import Access, Axis, Computation
from gta_core.models import MappingCandidate
from gta_core.plugins import default_registry, load

# One small shape per family: large enough that the 16 lanes fit, small enough to build fast.
FAMILIES = {
    "gemm": "gemm:M=20,N=32,K=24",
    "batch_gemm": "batch_gemm:B=2,M=16,N=32,K=8",
    "gemv": "gemv:M=32,K=24",
    "conv1d": "conv1d:N=1,C=8,L=18,K=16,R=3,pad=1",
    "conv2d": "conv2d:N=1,C=8,H=8,W=16,K=16,R=3,S=3,pad=1",
    # unit R, S: reindex drops them from the data's h + r (every mapping failed before)
    "pointwise": "conv2d:N=1,C=16,H=4,W=16,K=16,R=1,S=1,stride=2",
    "grouped": "conv2d:N=1,C=16,H=6,W=16,K=32,R=3,S=3,pad=1,groups=2",
    "dilated": "conv2d:N=1,C=8,H=8,W=16,K=16,R=3,S=3,pad=2,dilation=2",
    "depthwise": "depthwise_conv2d:N=1,C=16,H=8,W=16,R=3,S=3,pad=1",
    "conv3d": "conv3d:N=1,C=4,D=4,H=4,W=16,K=16,T=3,R=3,S=3,pad=1",
    "transposed": "conv2d_transpose:N=1,C=8,H=4,W=8,K=16,R=3,S=3,stride=2,pad=1",
}


def kept(spec: str, target: str = "avx512") -> list[MappingCandidate]:
    registry = default_registry()
    return [c for c in mapping_candidates(load_workload(spec), target, registry)
            if c.status == "kept"]


@pytest.mark.runs("avx512")
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_a_kept_mapping_and_every_kept_one_realises_correctly(family, dtype):
    spec = f"{FAMILIES[family]},dtype={dtype}"
    report = mappings(spec, "avx512", check=True)
    survivors = [m for m in report.mappings if m.status == "kept"]
    assert survivors, f"no kept mapping for {spec}"
    for m in report.mappings:
        if m.status == "pruned":  # only the padding bound, rfactor's and sliding windows'
            assert m.reason.startswith(("padding wastes", "rfactor lanes", "window ",
                                        "vetoed by gta-core.mapping: window ")), \
                f"{m.id}: {m.reason}"  # conditions may prune here, never a failure
    assert all(m.checked and m.gops > 0 for m in survivors)


@pytest.mark.runs("avx512")
@pytest.mark.parametrize("family", ["gemm", "conv2d", "depthwise"])
def test_bfloat16_mappings_use_vdpbf16ps_and_realise_correctly(family):
    report = mappings(f"{FAMILIES[family]},dtype=bfloat16", "avx512", check=True)
    survivors = [m for m in report.mappings if m.status == "kept"]
    assert survivors and all(m.checked for m in survivors)
    assert {m.intrinsic for m in survivors} == {"bf16"}


def test_conv2d_int8_maps_in_several_distinct_ways():
    candidates = kept("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=int8")
    assert len({(c.intrinsic, str(c.axes)) for c in candidates}) >= 2
    lanes = {tuple(c.axes["i"]) for c in candidates}
    assert ("k",) in lanes and ("w",) in lanes  # lanes from out-channels and from the width


def test_depthwise_lanes_come_from_the_width_for_dot_products_and_the_channel_elementwise():
    candidates = kept("depthwise_conv2d:N=1,C=128,H=56,W=56,R=3,S=3,pad=1,dtype=int8")
    assert {c.intrinsic for c in candidates} == {"vnni-act-lanes", "mac16-u8s8",
                                                 "mac16-u8s8-bcast", "vnni-window",
                                                 "vnni-lanes"}
    dot = [c for c in candidates if c.intrinsic == "vnni-act-lanes"]
    assert any(c.axes["i"] == ["w"] for c in dot)
    assert not any("c" in c.axes["i"] for c in dot)  # the weight would need c in both
    assert [c.axes for c in candidates if c.intrinsic == "mac16-u8s8"] == [{"i": ["c"]}]
    # The broadcast weight takes lanes from any output loop but the channel it depends on.
    assert sorted(str(c.axes["i"]) for c in candidates if c.intrinsic == "mac16-u8s8-bcast") \
        == ["['h', 'w']", "['h']", "['w']"]
    # The sliding window A[i + k] only where the input's last dimension is w + s.
    assert [c.axes for c in candidates if c.intrinsic == "vnni-window"] == [
        {"i": ["w"], "k": ["s"]}]
    # Both operands in the lanes (channels) with a reduction of 3 taps: the window's taps.
    assert sorted(str(c.axes["k"]) for c in candidates if c.intrinsic == "vnni-lanes") \
        == ["['r', 's']", "['r']", "['s']"]
    assert all(c.axes["i"] == ["c"] for c in candidates if c.intrinsic == "vnni-lanes")


def test_a_shape_that_does_not_divide_is_kept_through_padding():
    candidates = kept("gemm:M=197,N=512,K=512,dtype=int8")
    padded = [c for c in candidates if c.axes["i"] == ["m"]]
    assert padded and padded[0].padding == {"i": 208}
    assert padded[0].waste == pytest.approx(1 - 197 / 208, abs=1e-3)


@pytest.mark.runs("avx512")
def test_a_padded_mapping_realises_correctly():
    report = mappings("gemm:M=19,N=32,K=6,dtype=int8", "avx512", check=True)
    assert any(m.padding and m.checked for m in report.mappings)


def test_too_much_padding_is_pruned_with_the_reason():
    report = mappings("conv2d:N=1,C=8,H=10,W=10,K=16,R=3,S=3,pad=1,dtype=int8", "avx512")
    lanes_from_batch = [m for m in report.mappings if m.axes.get("i") == ["n"]]
    assert lanes_from_batch and all(m.status == "pruned" for m in lanes_from_batch)
    assert "padding wastes 94% of the work" in lanes_from_batch[0].reason


def test_conv2d_float16_has_several_tensor_core_mappings():
    candidates = kept("conv2d:N=8,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=float16", "cuda-tc")
    assert len(candidates) >= 2
    assert {"wmma-m16n16k16-f16f32", "wmma-m32n8k16-f16f32"} <= {c.intrinsic for c in candidates}


def test_enumeration_is_deterministic_with_stable_ids():
    first = [c.id for c in kept("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=int8")]
    second = [c.id for c in kept("conv2d:N=1,C=64,H=56,W=56,K=64,R=3,S=3,pad=1,dtype=int8")]
    assert first == second and len(set(first)) == len(first)


def test_the_dependence_condition_decides_which_loops_may_feed_which_axis():
    """A[m,k] x B[k,n] onto a dot product whose lane operand is B: lanes only from n."""
    def access(tensor, dtype, *dims, output=False):
        return Access(tensor, dtype, tuple(((d, 1),) for d in dims), output=output)

    op = Computation(axes=(Axis("m", 32, "spatial"), Axis("n", 32, "spatial"),
                           Axis("k", 8, "reduce")),
                     inputs=(access("A", "uint8", "m", "k"), access("B", "int8", "k", "n")),
                     output=access("C", "int32", "m", "n", output=True))
    intr = Computation(axes=(Axis("i", 16, "spatial"), Axis("r", 4, "reduce")),
                       inputs=(access("X", "uint8", "r"), access("Y", "int8", "i", "r")),
                       output=access("Z", "int32", "i", output=True))
    [candidate] = enumerate_mappings(op, intr, "dot")
    assert candidate.axes == {"i": ["n"], "r": ["k"]}
    assert candidate.operands == {"X": "A", "Y": "B", "Z": "C"}
    mismatched = Computation(axes=intr.axes, inputs=(access("X", "float32", "r"),
                                                     access("Y", "float32", "i", "r")),
                             output=access("Z", "float32", "i", output=True))
    assert enumerate_mappings(op, mismatched, "dot") == []  # dtypes must match


class AddsAndVetoes:
    @hookimpl
    def gta_mapping_candidates(self, workload, intrinsic, target):
        if intrinsic.name != "vnni":
            return []
        return [MappingCandidate(id="hand-made", intrinsic="vnni", operands={"A": "A"},
                                 axes={"i": ["n"], "k": ["k"]})]

    @hookimpl
    def gta_mapping_veto(self, candidate, workload, intrinsic, target):
        return "no act lanes today" if candidate.intrinsic == "vnni-act-lanes" else None


def test_plugins_add_and_veto_candidates():
    registry = load(environ={"GTA_PLUGINS": "gta-avx512"}, extra=[("picky", AddsAndVetoes())])
    candidates = mapping_candidates(load_workload("gemm:M=64,N=64,K=64,dtype=int8"), "avx512",
                                    registry)
    by_id = {c.id: c for c in candidates}
    assert by_id["hand-made"].source == "picky"
    vetoed = [c for c in candidates if c.intrinsic == "vnni-act-lanes"]
    assert vetoed and all(c.status == "pruned" for c in vetoed)
    assert vetoed[0].reason == "vetoed by picky: no act lanes today"


def test_a_plugin_returning_junk_candidates_is_reported_and_skipped():
    class Junk:
        @hookimpl
        def gta_mapping_candidates(self, workload, intrinsic, target):
            return [{"id": "Bad Id!", "intrinsic": "x"}]

    registry = load(environ={"GTA_PLUGINS": "gta-avx512"}, extra=[("junk", Junk())])
    candidates = mapping_candidates(load_workload("gemm:M=64,N=64,K=64,dtype=int8"), "avx512",
                                    registry)
    assert candidates and all(c.source == "gta-core" for c in candidates)
    assert registry.failures[0].plugin == "junk"


def _realised_blocks(spec: str, lanes: list[str]) -> tuple[set[str], bool]:
    """The root's blocks of the realised candidate with lanes ``lanes``, and its correctness."""
    from gta_core.mapping.realise import realise
    from gta_core.measure import measure_program

    registry = default_registry()
    workload = load_workload(spec)
    target = registry.target("avx512")
    candidate = next(c for c in mapping_candidates(workload, "avx512", registry)
                     if c.status == "kept" and c.axes["i"] == lanes)
    sch = realise(workload, candidate, registry.intrinsics[candidate.intrinsic], target).sch
    names = {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}
    return names, measure_program(sch.mod, workload, target, number=1, repeat=1).correct


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_an_output_whose_lane_windows_are_contiguous_is_written_in_place(dtype):
    names, correct = _realised_blocks(f"gemm:M=32,N=64,K=32,dtype={dtype}", ["n"])
    assert correct and "gemm_reindex" not in names  # C[m, n0:n0+16] is contiguous already


@pytest.mark.parametrize(("spec", "lanes"), [
    ("gemm:M=32,N=64,K=32,dtype=float32", ["m"]),  # lanes down a column: strided
    ("gemm:M=32,N=40,K=32,dtype=float32", ["n"]),  # padded from 40 to 48
])
def test_an_output_whose_lane_windows_are_not_contiguous_is_written_back(spec, lanes):
    names, correct = _realised_blocks(spec, lanes)
    assert correct and "gemm_reindex" in names


def test_interchangeable_intrinsic_inputs_are_assigned_in_one_order_only():
    """c[i] += a[i] * b[i]: swapping a and b gives the same program, so it is made once."""
    found = [c for c in kept("depthwise_conv2d:N=1,C=32,H=8,W=8,R=3,S=3,pad=1,dtype=float32")
             if c.intrinsic == "fma16-elementwise"]
    assert len(found) == 1 and found[0].operands == {"A": "pad", "B": "weight",
                                                       "C": "depthwise_conv2d"}


def test_check_on_a_gpu_target_without_a_gpu_says_compiled_not_checked():
    """Nothing here runs a GPU program: --check builds it, and says so instead of 'checked'."""
    import tvm

    from gta_core.api import CheckedCandidate, _check

    if tvm.cuda().exist:
        pytest.skip("a GPU is present: its candidates would be run")
    registry = default_registry()
    workload = load_workload("gemm:M=32,N=32,K=32,dtype=float16", registry)
    first = next(c for c in mapping_candidates(workload, "cuda-tc", registry)
                 if c.status == "kept")
    row = _check(workload, CheckedCandidate(**first.model_dump()),
                 registry.intrinsics[first.intrinsic], registry.target("cuda-tc"))
    assert row.status == "kept" and row.compiled and not row.checked and row.gops is None
