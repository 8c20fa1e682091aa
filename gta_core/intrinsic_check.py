"""Checks of one declared intrinsic against what TVM and the hardware do with it.

Two questions a plugin's author cannot answer by reading their own declaration:

- Does the declared compute (the data the enumerator maps with) say what the TVM tensor
  intrinsic's description computes? A mismatch makes tensorize refuse every mapping, or,
  worse, match a computation the hardware does not perform.
- Does a program mapped onto it build, and where this machine runs the target, compute the
  numpy reference? :func:`realised_samples` realises the intrinsic on a small workload of
  each operator family it maps (untuned: the mapping's plain realisation) and runs it.
"""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass

from .host import runs_here
from .mapping.access import Access, Computation, block_computation, intrinsic_computation
from .models import Intrinsic, Target
from .workloads.operator import DTYPE_ROLES, OUT_DTYPES

# One small workload per built-in operator family: big enough for every shipped intrinsic's
# tile (wmma's 16x16x16, VNNI's 16 lanes x 4), small enough to build in a second or two.
SAMPLE_SPECS = (
    "gemm:M=32,N=32,K=64",
    "batch_gemm:B=2,M=32,N=32,K=32",
    "conv2d:N=1,C=16,H=8,W=8,K=32,R=3,S=3,pad=1",
    "depthwise_conv2d:N=1,C=32,H=8,W=8,R=3,S=3,pad=1",
    "conv1d:N=1,C=16,L=32,K=32,R=3,pad=1",
)


def compare_compute(intrinsic: Intrinsic) -> tuple[str, str]:
    """``(status, detail)``: whether the declared compute equals its TVM description.

    Both are read as ``out[...] += prod(inputs[...])`` over named axes (the description's
    read of its own accumulator dropped); they agree (``passed``) when some renaming of the
    axes makes the extents, kinds, dtypes and index expressions equal, inputs in any order.
    A description whose indices are not affine in its block's variables (one over
    warp-distributed registers, ``vi % 8``) cannot be read this way: ``skipped``.
    """
    from tvm import s_tir
    from tvm.s_tir import TensorIntrin

    from .mapping.access import NotAffine

    name = intrinsic.tvm_intrinsics.get("compute")
    if name is None:
        return "skipped", "no TVM intrinsic named 'compute' to compare with"
    importlib.import_module(intrinsic.tvm_module)
    desc = TensorIntrin.get(name).desc
    sch = s_tir.Schedule(desc)
    blocks = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    if len(blocks) != 1:
        return "failed", f"the description of {name} has {len(blocks)} blocks, not one"
    try:
        described = block_computation(sch, blocks[0])
    except NotAffine as exc:
        return "skipped", f"the description of {name} cannot be read as one: {exc}"
    declared = intrinsic_computation(intrinsic)
    if _equivalent(declared, described):
        return "passed", f"matches {name}"
    return "failed", f"declared {_show(declared)}, but {name} describes {_show(described)}"


def _equivalent(declared: Computation, described: Computation) -> bool:
    inputs = tuple(a for a in described.inputs if a.tensor != described.output.tensor)
    if len(declared.axes) != len(described.axes) or len(declared.inputs) != len(inputs):
        return False
    for order in itertools.permutations(described.axes):
        if any((a.extent, a.kind) != (b.extent, b.kind) for a, b in zip(declared.axes, order)):
            continue
        rename = {b.name: a.name for a, b in zip(declared.axes, order)}
        if (_form(described.output, rename) == _form(declared.output, {})
                and sorted(_form(a, rename) for a in inputs)
                == sorted(_form(a, {}) for a in declared.inputs)):
            return True
    return False


def _form(access: Access, rename: dict[str, str]) -> tuple:
    return access.dtype, tuple(tuple(sorted((rename.get(v, v), c) for v, c in index if c))
                               for index in access.indices)


def _show(computation: Computation) -> str:
    def term(access: Access) -> str:
        dims = ", ".join(" + ".join(f"{c}*{v}" if c != 1 else v for v, c in index if c) or "0"
                         for index in access.indices)
        return f"{access.tensor}[{dims}]:{access.dtype}"

    axes = ", ".join(f"{a.name}<{a.extent} {a.kind}" for a in computation.axes)
    inputs = [a for a in computation.inputs if a.tensor != computation.output.tensor]
    return f"{term(computation.output)} += {' * '.join(map(term, inputs))} over {axes}"


def workload_dtypes(intrinsic: Intrinsic) -> list[tuple[str, str | None]]:
    """The workload ``(dtype, out_dtype)`` pairs whose output is the intrinsic's accumulator
    (``out_dtype`` None where it is the dtype's default), those whose operands are exactly
    the intrinsic's first. Another pair may still map through a plugin's rewrite (u8 x s8
    workloads onto an s8 x s8 intrinsic, by their signed form)."""
    inputs = sorted(o.dtype for o in intrinsic.compute.inputs)
    output = intrinsic.compute.output.dtype
    pairs = [(dtype, None if output == acc else output)
             for dtype, (data, weight, acc) in DTYPE_ROLES.items()
             if output == acc or output in OUT_DTYPES[dtype]]
    return sorted(pairs, key=lambda p: sorted(DTYPE_ROLES[p[0]][:2]) != inputs)


@dataclass
class Sample:
    """One realisation of an intrinsic: the workload, the mapping, what happened."""

    spec: str
    mapping: str | None = None
    status: str = "skipped"  # "checked", "compiled", "failed" or "skipped"
    detail: str = ""


def sample_mappings(intrinsic: Intrinsic, target: Target, registry) -> list[tuple]:
    """``(workload, candidate)``: each sample workload ``intrinsic`` maps, in the first of
    :func:`workload_dtypes` it maps at, with its first kept mapping onto it."""
    from .mapping import mapping_candidates
    from .workloads import parse_workload

    found = []
    for base in SAMPLE_SPECS:
        for dtype, out_dtype in workload_dtypes(intrinsic):
            spec = f"{base},dtype={dtype}" + (f",out_dtype={out_dtype}" if out_dtype else "")
            try:
                workload = parse_workload(spec, registry.operators)
            except Exception:  # noqa: BLE001 - the operator is not loaded, or takes no such dtype
                continue
            kept = [c for c in mapping_candidates(workload, target.name, registry)
                    if c.intrinsic == intrinsic.name and c.status == "kept"]
            if kept:
                found.append((workload, kept[0]))
                break
    return found


def realised_samples(intrinsic: Intrinsic, target: Target, registry) -> list[Sample]:
    """Realise ``intrinsic`` on each sample workload it maps (its first kept mapping), build
    it, and where :func:`~gta_core.host.runs_here`, run it against numpy with a
    garbage-filled output."""
    from .mapping.realise import realise
    from .measure.check import build, measure_program

    samples = []
    for workload, candidate in sample_mappings(intrinsic, target, registry):
        sample = Sample(spec=workload.spec, mapping=candidate.id)
        try:
            realised = realise(workload, candidate, intrinsic, target)
            if runs_here(target):
                result = measure_program(realised.sch.mod, workload, target, number=1, repeat=1)
                sample.status = "checked" if result.correct else "failed"
                sample.detail = "" if result.correct else f"wrong result: {result.mismatch}"
            else:
                build(realised.sch.mod, target)
                sample.status = "compiled"
                sample.detail = "built; this machine does not run the target"
        except Exception as exc:  # noqa: BLE001 - reported per sample
            text = str(exc).strip().splitlines()
            sample.status, sample.detail = "failed", (text[-1] if text else type(exc).__name__)
        samples.append(sample)
    return samples
