"""benchmarks/amx_probe.py: AMX tdpbusd through TensorIR's tensorize computes exactly, on a
CPU with AMX-INT8 whose kernel grants the tile data; elsewhere it says why and skips."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[1] / "benchmarks" / "amx_probe.py"


def _probe():
    spec = importlib.util.spec_from_file_location("amx_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_probe_says_why_it_cannot_run_or_computes_exactly():
    probe = _probe()
    why = probe.amx_refused()
    if why:
        assert "AMX" in why
        pytest.skip(f"no AMX here: {why}")
    # one tdpbusd per call, a chain of four in one tile, 2 x 2 tiles on prepacked weights
    for steps, tiles, prepacked in ((1, 1, False), (4, 1, False), (2, 2, True)):
        row = probe.measure(256, steps, repeat=1, tiles=tiles, prepacked=prepacked)
        assert row["exact"] and row["gops"] > 0


def test_a_size_the_blocks_do_not_divide_is_refused_in_one_line():
    with pytest.raises(SystemExit, match="multiple of 16 .16 x tiles. and of 64"):
        _probe().build(200, 4)
