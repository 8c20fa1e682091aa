"""The target builds for this CPU: LLVM's name for it follows the vendor and the flags."""

from __future__ import annotations

import os

import pytest
from gta_avx512.plugin import MCPU, llvm_cpu

from gta_core.host import cpu_flags, cpu_vendor

AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"}


@pytest.mark.parametrize(("vendor", "flags", "expected"), [
    ("AuthenticAMD", AVX512 | {"avx512_bf16"}, "znver4"),
    # Emerald Rapids (this workplace's Intel hosts): znver4's SSE4A stops it with SIGILL.
    ("GenuineIntel", AVX512 | {"avx512_bf16", "avx512_fp16", "amx_tile"}, "sapphirerapids"),
    # The same under a VM that hides AMX: cooperlake would leave VBMI and FP16 unused.
    ("GenuineIntel", AVX512 | {"avx512_bf16", "avx512_fp16", "avx512vbmi"}, "sapphirerapids"),
    ("GenuineIntel", AVX512 | {"avx512_bf16"}, "cooperlake"),
    ("GenuineIntel", AVX512 | {"avx512_vbmi2"}, "icelake-server"),
    ("GenuineIntel", AVX512, "cascadelake"),
    ("GenuineIntel", AVX512 - {"avx512_vnni"}, "skylake-avx512"),
    ("GenuineIntel", {"avx2"}, "znver4"),  # no AVX-512 here: it can only build
    ("", set(), "znver4"),
])
def test_llvm_cpu_follows_the_vendor_and_flags(vendor, flags, expected):
    assert llvm_cpu(vendor, flags) == expected


def test_the_target_builds_for_this_cpu():
    if os.environ.get("GTA_AVX512_MCPU"):
        assert os.environ["GTA_AVX512_MCPU"] == MCPU  # the user's choice wins
    else:
        assert llvm_cpu(cpu_vendor(), cpu_flags()) == MCPU
