"""Pydantic models that cross plugin boundaries.

A plugin hands the core a :class:`Target` or an :class:`Intrinsic`; the core
re-validates every object it is given, so a malformed registration is caught
where it is made and blamed on the plugin that made it.
"""

from __future__ import annotations

import ast
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

NAME_PATTERN = r"^[a-z][a-z0-9_.-]*$"
"""Names users type (targets, intrinsics, rules): lower case, no spaces."""

DTYPES = ("uint8", "int8", "int16", "int32", "float16", "bfloat16", "float32", "float64")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Model):
    """What a target has, as far as pruning constraints need to know.

    CPU fields and GPU fields are all optional: a constraint that needs a
    resource the target does not declare does not apply to it.
    """

    cores: PositiveInt | None = None
    cache_bytes: dict[str, PositiveInt] = Field(
        default_factory=dict, description="per level, e.g. {'L1': 32768, 'L2': 1048576}"
    )
    vector_registers: PositiveInt | None = None
    vector_width_bits: PositiveInt | None = None
    # The intrinsic's dependent-issue latency and how many issue per cycle: their product is
    # how many independent accumulators keep the units busy (default 4 x 2, x86 FMA-class).
    vector_latency_cycles: PositiveInt | None = None
    vector_issue_per_cycle: PositiveInt | None = None
    # GPU
    sm_count: PositiveInt | None = None
    warp_size: PositiveInt | None = None
    max_threads_per_block: PositiveInt | None = None
    shared_memory_per_block: PositiveInt | None = None
    shared_memory_per_sm: PositiveInt | None = None
    registers_per_block: PositiveInt | None = None
    registers_per_sm: PositiveInt | None = None
    registers_per_thread: PositiveInt | None = None

    @field_validator("cache_bytes")
    @classmethod
    def _levels(cls, value: dict[str, int]) -> dict[str, int]:
        for level in value:
            if not re.fullmatch(r"L[1-9]", level):
                raise ValueError(f"cache level {level!r} is not one of L1, L2, L3, ...")
        return value


class UnknownArch(ValueError):
    """An architecture a target does not declare; the message is one line naming the known ones."""


def _check_peak(value: dict[str, float]) -> dict[str, float]:
    for dtype, gflops in value.items():
        if dtype not in DTYPES:
            raise ValueError(f"peak dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if gflops <= 0:
            raise ValueError(f"peak for {dtype} must be positive, got {gflops}")
    return value


class TargetArch(_Model):
    """One architecture a target can generate for (e.g. a GPU's ``sm_90``), as data.

    ``tvm`` holds the keys it changes in the target's TVM dict (``{"arch": "sm_90"}``);
    ``resources`` and ``peak`` replace the target's own.
    """

    description: str = ""
    tvm: dict[str, object] = Field(default_factory=dict)
    resources: Resources
    peak: dict[str, float] = Field(default_factory=dict)

    @field_validator("peak")
    @classmethod
    def _peak_dtypes(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_peak(value)


class Target(_Model):
    """A hardware target that GTA generates programs for.

    ``tvm`` is the TVM target in dict form (TVM 0.27 refuses CLI-style target
    strings); ``peak`` holds nominal throughput per input dtype in GFLOP/s (GOPS
    for integer types), the denominator of fraction-of-peak figures until
    ``gta peak`` measures the real one. ``archs`` declares the architectures the
    target can also generate for (``--arch``); ``arch`` names the one it stands for.
    ``realisation`` names the module (imported when first needed) whose
    ``realise(workload, candidate, intrinsic, target)`` and ``finish(sch, block, reduce,
    inner, compute)`` build this target's programs; None takes the core's CPU realisation
    (a ``cpu`` target), and a ``gpu`` target must name one. ``tir_pipeline`` names the TVM
    TIR pipeline its programs build with, as ``module:name`` (importing ``module`` registers
    ``name`` with ``tvm.tirx.compilation_pipeline.register_tir_pipeline``); None: TVM's default.
    ``host_flags`` lists the CPU features (as /proc/cpuinfo names them, e.g. ``avx512f``) a
    ``cpu`` target's programs use: on a host that lacks one GTA builds them but runs none
    (:func:`gta_core.host.require_runs_here`), since the first would stop the process with an
    illegal instruction.
    """

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    kind: Literal["cpu", "gpu"]
    tvm: dict[str, object]
    resources: Resources = Field(default_factory=Resources)
    peak: dict[str, float] = Field(default_factory=dict)
    arch: str | None = None
    archs: dict[str, TargetArch] = Field(default_factory=dict)
    realisation: str | None = None
    tir_pipeline: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    host_flags: list[str] = Field(default_factory=list)

    def for_arch(self, arch: str | None) -> Target:
        """This target generating for ``arch`` (None: as declared); UnknownArch if undeclared."""
        if arch is None or arch == self.arch:
            return self
        if arch not in self.archs:
            known = ", ".join(sorted(self.archs)) or "none"
            raise UnknownArch(f"target {self.name} has no arch {arch!r}; declared: {known}")
        chosen = self.archs[arch]
        return self.model_copy(update={
            "arch": arch, "tvm": {**self.tvm, **chosen.tvm}, "resources": chosen.resources,
            "peak": chosen.peak or self.peak,
            "description": chosen.description or self.description})

    @field_validator("tvm")
    @classmethod
    def _tvm_has_kind(cls, value: dict[str, object]) -> dict[str, object]:
        if not isinstance(value.get("kind"), str):
            raise ValueError("the TVM target dict needs a 'kind' such as 'llvm' or 'cuda'")
        return value

    @field_validator("peak")
    @classmethod
    def _peak_dtypes(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_peak(value)

    def tvm_target(self):
        """The :class:`tvm.target.Target` this target compiles for."""
        import tvm

        return tvm.target.Target(dict(self.tvm))


class IterVar(_Model):
    """One loop of an intrinsic's compute: a fixed extent, spatial or reduce."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    extent: PositiveInt
    kind: Literal["spatial", "reduce"]


class Operand(_Model):
    """One tensor an intrinsic reads or writes, and where it lives.

    ``indices`` are affine index expressions over the intrinsic's iteration
    variables (``"i"``, ``"k * 4 + j"``); ``scope`` is the memory scope the
    operand must be in (``"global"``, ``"wmma.matrix_a"``...); ``load`` and
    ``store`` name the TVM tensor intrinsics that move it into and out of that
    scope, where one is needed.

    ``layout`` is how the intrinsic reads its window from memory, where that is not in the
    order of ``indices``: one index expression per memory dimension over the operand's
    variables, outermost first. AMX reads ``B[k, j]`` as ``["k // 4", "j", "k % 4"]``
    (16 columns of 4 consecutive k per 64-byte row); the realisation packs the operand that
    way. ``held`` says where the operand stays between calls: ``"registers"`` (a register
    tile of calls keeps it in vector registers: the CPU register constraints count it) or
    ``"memory"`` (each call loads and stores it itself, as AMX's tile loads do).
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    role: Literal["input", "output"]
    dtype: Literal[DTYPES]  # type: ignore[valid-type]
    indices: list[str] = Field(min_length=1)
    scope: str = "global"
    load: str | None = None
    store: str | None = None
    layout: list[str] | None = Field(default=None, min_length=1)
    held: Literal["registers", "memory"] = "registers"

    @model_validator(mode="after")
    def _layout_over_indices(self) -> Operand:
        if self.layout is None:
            return self
        own = set().union(*(index_variables(i) for i in self.indices))
        for expression in self.layout:
            unknown = index_variables(expression) - own
            if unknown:
                raise ValueError(f"operand {self.name} layout {expression!r} uses "
                                 f"{sorted(unknown)}, which index no dimension of it")
        if any(len(index_variables(i)) != 1 for i in self.indices):
            raise ValueError(f"operand {self.name} declares a layout, so each of its indices "
                             "must be one variable")
        return self


_AFFINE_NODES = (ast.Expression, ast.BinOp, ast.Name, ast.Load, ast.Constant, ast.Add, ast.Sub,
                 ast.Mult, ast.FloorDiv, ast.Mod, ast.UnaryOp, ast.USub)


def index_variables(expression: str) -> set[str]:
    """The variable names in an index expression; ValueError if it is not one."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"index {expression!r} is not an expression") from exc
    for node in ast.walk(tree):
        if not isinstance(node, _AFFINE_NODES):
            raise ValueError(
                f"index {expression!r} uses {type(node).__name__}; "
                "only names, integers, +, -, *, // and % are allowed"
            )
        if isinstance(node, ast.Constant) and not isinstance(node.value, int):
            raise ValueError(f"index {expression!r} has a non-integer constant {node.value!r}")
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


class IntrinsicCompute(_Model):
    """An intrinsic's computation as data: ``out[...] += prod(inputs[...])``."""

    iter_vars: list[IterVar] = Field(min_length=1)
    operands: list[Operand] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> IntrinsicCompute:
        names = [v.name for v in self.iter_vars]
        if len(set(names)) != len(names):
            raise ValueError(f"iteration variable names repeat: {names}")
        operand_names = [o.name for o in self.operands]
        if len(set(operand_names)) != len(operand_names):
            raise ValueError(f"operand names repeat: {operand_names}")
        outputs = [o for o in self.operands if o.role == "output"]
        if len(outputs) != 1:
            raise ValueError(f"an intrinsic has exactly one output operand, got {len(outputs)}")
        kinds = {v.name: v.kind for v in self.iter_vars}
        used: set[str] = set()
        for operand in self.operands:
            for index in operand.indices:
                variables = index_variables(index)
                unknown = variables - set(kinds)
                if unknown:
                    raise ValueError(
                        f"operand {operand.name} index {index!r} uses undeclared "
                        f"variable(s) {sorted(unknown)}; declared: {names}"
                    )
                if operand.role == "output" and any(kinds[v] == "reduce" for v in variables):
                    raise ValueError(f"output {operand.name} is indexed by a reduce variable")
                used |= variables
        unused = set(names) - used
        if unused:
            raise ValueError(f"iteration variable(s) {sorted(unused)} index no operand")
        return self

    @property
    def output(self) -> Operand:
        return next(o for o in self.operands if o.role == "output")

    @property
    def inputs(self) -> list[Operand]:
        return [o for o in self.operands if o.role == "input"]

    def extent(self, name: str) -> int:
        return next(v.extent for v in self.iter_vars if v.name == name)

    @property
    def macs(self) -> int:
        """Multiply-accumulates one call performs."""
        total = 1
        for var in self.iter_vars:
            total *= var.extent
        return total


class Intrinsic(_Model):
    """A hardware intrinsic declared as data: its compute and its memory.

    ``tvm_intrinsics`` names the TVM tensor intrinsics that implement it (the
    compute one under ``"compute"``; ``"init"`` and loads/stores where the
    target needs them); ``tvm_module`` is the importable module whose import
    registers them with TVM, so build workers can import just that module.

    List the compute's inputs in the order the TVM compute intrinsic reads
    them: TVM's tensorize matches a block's reads by position. Where the two
    inputs have the same dtype, a block may read them the other way round;
    ``"compute_mirrored"`` names a TVM intrinsic for that order.
    """

    name: str = Field(pattern=NAME_PATTERN)
    target: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    compute: IntrinsicCompute
    tvm_intrinsics: dict[str, str] = Field(default_factory=dict)
    tvm_module: str | None = None

    @field_validator("tvm_intrinsics")
    @classmethod
    def _has_compute(cls, value: dict[str, str]) -> dict[str, str]:
        if value and "compute" not in value:
            raise ValueError("tvm_intrinsics must name the 'compute' tensor intrinsic")
        return value

    @property
    def input_dtypes(self) -> tuple[str, ...]:
        return tuple(o.dtype for o in self.compute.inputs)

    @property
    def output_dtype(self) -> str:
        return self.compute.output.dtype


class PluginFailure(_Model):
    """A plugin that could not be loaded or that broke, and why."""

    plugin: str
    stage: str = Field(description="'import', or the hook that raised or returned bad data")
    cause: str


class MappingCandidate(_Model):
    """One way to map an operator's loops and tensors onto an intrinsic.

    ``operands`` assigns each intrinsic operand an operator tensor; ``axes``
    lists, per intrinsic iteration variable, the operator iteration variables
    fused into it (outermost first); ``padding`` gives, for each intrinsic
    axis whose fused extent is not a multiple of the intrinsic's, the padded
    extent, and ``waste`` the fraction of the padded work that is padding.
    ``rfactor`` names the operator reduction variables that feed a spatial intrinsic
    lane: each lane accumulates a partial sum, added up after (TensorIR's rfactor).
    """

    id: str = Field(pattern=r"^[a-z0-9_.-]+$")
    intrinsic: str
    operands: dict[str, str]
    axes: dict[str, list[str]]
    padding: dict[str, PositiveInt] = Field(default_factory=dict)
    rfactor: list[str] = Field(default_factory=list)
    waste: float = Field(default=0.0, ge=0.0, lt=1.0)
    status: Literal["kept", "pruned"] = "kept"
    reason: str | None = None
    source: str = "gta-core"

    @model_validator(mode="after")
    def _reason_when_pruned(self) -> MappingCandidate:
        if self.status == "pruned" and not self.reason:
            raise ValueError("a pruned candidate needs a reason")
        return self


class PeakMeasurement(_Model):
    """An intrinsic's measured throughput on this machine: the fraction-of-peak denominator."""

    intrinsic: str
    target: str
    gops: float = Field(gt=0, description="GFLOP/s for float intrinsics, GOPS for integer ones")
    cores: PositiveInt
    repeats: PositiveInt
    spread: float = Field(ge=0, description="(max - min) / median over repeats")
    method: str = Field(description="how it was measured, in one sentence")


class PeakSkipped(_Model):
    """Why a plugin does not measure an intrinsic it owns; ``gta peak`` shows the reason."""

    intrinsic: str
    target: str
    reason: str = Field(min_length=1, description="why, in one sentence")
