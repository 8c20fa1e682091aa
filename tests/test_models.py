"""The models plugins hand to the core reject what cannot be used."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from gta_core.models import (
    Intrinsic,
    IntrinsicCompute,
    IterVar,
    MappingCandidate,
    Operand,
    Resources,
    Target,
    index_variables,
)


def dot(a_index="k", c_index="i", iter_vars=None, **operand_changes):
    return IntrinsicCompute(
        iter_vars=iter_vars or [IterVar(name="i", extent=16, kind="spatial"),
                                IterVar(name="k", extent=4, kind="reduce")],
        operands=[
            Operand(name="A", role="input", dtype="uint8", indices=[a_index]),
            Operand(name="B", role="input", dtype="int8", indices=["i", "k"]),
            Operand(name="C", role="output", dtype="int32", indices=[c_index], **operand_changes),
        ],
    )


def test_a_well_formed_intrinsic_exposes_its_compute():
    compute = dot()
    assert compute.output.name == "C"
    assert [o.name for o in compute.inputs] == ["A", "B"]
    assert compute.macs == 64 and compute.extent("k") == 4
    intrinsic = Intrinsic(name="vnni", target="avx512", compute=compute,
                          tvm_intrinsics={"compute": "x"})
    assert intrinsic.input_dtypes == ("uint8", "int8") and intrinsic.output_dtype == "int32"


@pytest.mark.parametrize(("change", "message"), [
    ({"a_index": "q"}, "undeclared variable(s) ['q']"),
    ({"c_index": "k"}, "indexed by a reduce variable"),
    ({"a_index": "k ** 2"}, "only names, integers"),
    ({"a_index": "k +"}, "is not an expression"),
    ({"a_index": "0.5"}, "non-integer constant"),
    ({"iter_vars": [IterVar(name="i", extent=16, kind="spatial"),
                    IterVar(name="k", extent=4, kind="reduce"),
                    IterVar(name="z", extent=2, kind="reduce")]}, "['z'] index no operand"),
])
def test_an_inconsistent_compute_is_rejected(change, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        dot(**change)


def test_a_compute_without_an_output_is_rejected():
    with pytest.raises(ValidationError, match="exactly one output operand"):
        IntrinsicCompute(iter_vars=[IterVar(name="i", extent=2, kind="spatial")], operands=[
            Operand(name="A", role="input", dtype="int8", indices=["i"]),
            Operand(name="B", role="input", dtype="int8", indices=["i"])])


@pytest.mark.parametrize("indices, layout, message", [
    (["k", "i"], ["k // 4", "j", "k % 4"], "uses ['j'], which index no dimension of it"),
    (["k", "i"], ["k // 4", "i", "k ** 4"], "only names, integers"),
    (["k * 4 + i"], ["k", "i"], "each of its indices must be one variable"),
    (["k", "i"], [], "at least 1 item"),
])
def test_a_window_layout_must_rearrange_the_operands_own_variables(indices, layout, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        Operand(name="B", role="input", dtype="int8", indices=indices, layout=layout)


def test_an_operand_is_held_in_registers_unless_declared_otherwise():
    operand = Operand(name="C", role="output", dtype="int32", indices=["i"])
    assert operand.held == "registers" and operand.layout is None
    with pytest.raises(ValidationError):
        Operand(name="C", role="output", dtype="int32", indices=["i"], held="tiles")


def test_index_variables_reads_affine_expressions():
    assert index_variables("k * 4 + j") == {"k", "j"}
    assert index_variables("0") == set()


def test_tvm_intrinsics_must_name_the_compute_one():
    with pytest.raises(ValidationError, match="'compute'"):
        Intrinsic(name="x", target="t", compute=dot(), tvm_intrinsics={"init": "y"})


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "Bad Name"}, "should match pattern"),
    ({"tvm": {"mcpu": "znver4"}}, "needs a 'kind'"),
    ({"peak": {"int4": 1.0}}, "peak dtype 'int4'"),
    ({"peak": {"int8": -1.0}}, "must be positive"),
    ({"kind": "fpga"}, "'cpu' or 'gpu'"),
    ({"tir_pipeline": "no_module_named"}, "should match pattern"),
])
def test_a_malformed_target_is_rejected(fields, message):
    base = {"name": "t", "kind": "cpu", "tvm": {"kind": "llvm"}}
    with pytest.raises(ValidationError, match=message):
        Target(**{**base, **fields})


def test_resources_name_cache_levels():
    assert Resources(cache_bytes={"L1": 32768}).cache_bytes["L1"] == 32768
    with pytest.raises(ValidationError, match="cache level 'l1'"):
        Resources(cache_bytes={"l1": 32768})
    with pytest.raises(ValidationError):
        Resources(cores=0)


def test_target_builds_a_tvm_target():
    target = Target(name="t", kind="cpu", tvm={"kind": "llvm", "mcpu": "znver4", "num-cores": 2})
    assert target.tvm_target().kind.name == "llvm"


def test_a_pruned_mapping_candidate_needs_a_reason():
    fields = {"id": "m0", "intrinsic": "vnni", "operands": {"A": "A"}, "axes": {"i": ["n"]}}
    assert MappingCandidate(**fields).status == "kept"
    with pytest.raises(ValidationError, match="needs a reason"):
        MappingCandidate(**fields, status="pruned")
    with pytest.raises(ValidationError):
        MappingCandidate(**fields, waste=1.0)
