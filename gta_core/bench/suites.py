"""The benchmark suites as data: named lists of workload specs and their default budget.

Shapes follow the paper's evaluation: ResNet-18's 12 distinct conv layers at batch 1
(the table AMOS and Ansor use), ResNet-50's distinct conv layers (torchvision v1.5, the
stride on the 3x3), and BERT-base's GEMMs at sequence length 128. The network suites
are int8, the dtype VNNI tensorizes on this CPU.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, PositiveInt


class Suite(BaseModel):
    """A named list of workloads, benchmarked together."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    workloads: tuple[str, ...] = Field(min_length=1)
    trials: PositiveInt  # the default budget per workload and tuning contender


def _conv2d(c: int, hw: int, k: int, r: int, stride: int, pad: int) -> str:
    return (f"conv2d:N=1,C={c},H={hw},W={hw},K={k},R={r},S={r},stride={stride},pad={pad},"
            "dtype=int8")


def _both(spec: str) -> tuple[str, str]:
    return f"{spec},dtype=int8", f"{spec},dtype=float32"


# (C, H=W, K, R=S, stride, pad): ResNet-18's conv layers C1-C12.
RESNET18_LAYERS = (
    (3, 224, 64, 7, 2, 3), (64, 56, 64, 3, 1, 1), (64, 56, 64, 1, 1, 0), (64, 56, 128, 3, 2, 1),
    (64, 56, 128, 1, 2, 0), (128, 28, 128, 3, 1, 1), (128, 28, 256, 3, 2, 1),
    (128, 28, 256, 1, 2, 0), (256, 14, 256, 3, 1, 1), (256, 14, 512, 3, 2, 1),
    (256, 14, 512, 1, 2, 0), (512, 7, 512, 3, 1, 1),
)

# ResNet-50: the stem, then per stage the 1x1 reduce, 3x3, 1x1 expand and downsample of the
# first block and the 1x1 reduce and 3x3 of the later blocks (the expand repeats).
RESNET50_LAYERS = (
    (3, 224, 64, 7, 2, 3),
    (64, 56, 64, 1, 1, 0), (64, 56, 64, 3, 1, 1), (64, 56, 256, 1, 1, 0), (256, 56, 64, 1, 1, 0),
    (256, 56, 128, 1, 1, 0), (128, 56, 128, 3, 2, 1), (128, 28, 512, 1, 1, 0),
    (256, 56, 512, 1, 2, 0), (512, 28, 128, 1, 1, 0), (128, 28, 128, 3, 1, 1),
    (512, 28, 256, 1, 1, 0), (256, 28, 256, 3, 2, 1), (256, 14, 1024, 1, 1, 0),
    (512, 28, 1024, 1, 2, 0), (1024, 14, 256, 1, 1, 0), (256, 14, 256, 3, 1, 1),
    (1024, 14, 512, 1, 1, 0), (512, 14, 512, 3, 2, 1), (512, 7, 2048, 1, 1, 0),
    (1024, 14, 2048, 1, 2, 0), (2048, 7, 512, 1, 1, 0), (512, 7, 512, 3, 1, 1),
)

# BERT-base at sequence length 128: fused QKV, attention output, FFN in and out, and the two
# attention products per head (12 heads of 64).
BERT_GEMMS = (
    "gemm:M=128,N=2304,K=768", "gemm:M=128,N=768,K=768", "gemm:M=128,N=3072,K=768",
    "gemm:M=128,N=768,K=3072", "batch_gemm:B=12,M=128,N=128,K=64",
    "batch_gemm:B=12,M=128,N=64,K=128",
)

# One realistic shape per operator family.
OPS_SHAPES = (
    "gemm:M=1024,N=1024,K=1024",
    "batch_gemm:B=12,M=128,N=128,K=64",
    "gemv:M=4096,K=1024",
    "conv1d:N=1,C=64,L=256,K=128,R=3,pad=1",
    "conv2d:N=1,C=128,H=28,W=28,K=128,R=3,S=3,pad=1",
    "conv3d:N=1,C=64,D=8,H=28,W=28,K=64,T=3,R=3,S=3,pad=1",
    "depthwise_conv2d:N=1,C=256,H=28,W=28,R=3,S=3,pad=1",
    "conv2d:N=1,C=128,H=28,W=28,K=128,R=3,S=3,pad=1,groups=8",
    "conv2d:N=1,C=128,H=28,W=28,K=128,R=3,S=3,pad=2,dilation=2",
    "conv2d_transpose:N=1,C=128,H=14,W=14,K=64,R=4,S=4,stride=2,pad=1",
)

# Reductions as products with ones (gta_core/workloads/reduction.py): a layer norm's statistics
# over rows of 1024, and a prefix sum along rows of 256.
REDUCTIONS = (
    "mean:M=4096,K=1024,dtype=float32", "variance:M=4096,K=1024,dtype=float32",
    "scan:M=1024,K=256,dtype=float32", "scan:M=1024,K=256,dtype=int8",
)

# The ops suite's GEMM and 3x3 convolution in bfloat16 (vdpbf16ps; float32 sums).
BF16 = tuple(f"{OPS_SHAPES[i]},dtype=bfloat16" for i in (0, 4))

SUITES: dict[str, Suite] = {suite.name: suite for suite in (
    Suite(name="ci", description="tiny GEMMs (int8 and float32), a few minutes",
          workloads=("gemm:M=64,N=64,K=64,dtype=int8", "gemm:M=64,N=64,K=64,dtype=float32"),
          trials=8),
    Suite(name="ops", description="one realistic shape per operator family, int8 and "
          "float32; GEMM and conv2d in bfloat16; the reductions as products with ones",
          workloads=(*(spec for shape in OPS_SHAPES for spec in _both(shape)), *BF16,
                     *REDUCTIONS),
          trials=200),
    Suite(name="bf16", description="the ops suite's GEMM and 3x3 conv2d in bfloat16",
          workloads=BF16, trials=64),
    Suite(name="reductions", description="mean, variance and prefix sum as products with "
          "ones, on the intrinsics", workloads=REDUCTIONS, trials=64),
    Suite(name="gemm-conv", description="a GEMM and a 3x3 conv2d, int8 and float32: a new "
          "target's first comparison (e.g. the AVX2 example against MetaSchedule)",
          workloads=(*_both(OPS_SHAPES[0]), *_both(OPS_SHAPES[4])), trials=64),
    Suite(name="resnet18", description="ResNet-18's 12 distinct conv layers, batch 1, int8",
          workloads=tuple(_conv2d(*layer) for layer in RESNET18_LAYERS), trials=200),
    Suite(name="resnet50", description="ResNet-50's distinct conv layers, batch 1, int8",
          workloads=tuple(_conv2d(*layer) for layer in RESNET50_LAYERS), trials=200),
    Suite(name="bert", description="BERT-base's GEMMs at sequence length 128, int8",
          workloads=tuple(f"{spec},dtype=int8" for spec in BERT_GEMMS), trials=200),
)}
