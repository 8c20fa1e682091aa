"""Winograd's F(m x m, 3 x 3) for a model's float32 3x3 convolutions
(:mod:`gta_core.frontends.winograd`)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import te

from gta_core.frontends import winograd

LANES = 16


def _direct(x, w, padding):
    """The convolution in float64: x [n, c, h, w], w [k, c, 3, 3], padding (t, l, b, r)."""
    top, left, bottom, right = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    out_h, out_w = xp.shape[2] - 2, xp.shape[3] - 2
    out = np.zeros((x.shape[0], w.shape[0], out_h, out_w))
    for r in range(3):
        for s in range(3):
            out += np.einsum("nchw,kc->nkhw", xp[:, :, r:r + out_h, s:s + out_w],
                             w[:, :, r, s].astype(np.float64))
    return out


def _blocked(x):
    n, c, h, w = x.shape
    return x.reshape(n, c // LANES, LANES, h, w).transpose(0, 1, 3, 4, 2).copy()


def _winograd(x, w, m, padding, scheduled):
    """The four functions of ``m`` composed in one PrimFunc and run; the output in NCHW."""
    n, c, h, wd = x.shape
    k = w.shape[0]
    data = te.placeholder((n, c // LANES, h, wd, LANES), "float32", name="data")
    kernel = te.placeholder((k // LANES, c, 3, 3, 1, LANES), "float32", name="kernel")
    points = te.placeholder(((m + 2) ** 2, 9), "float32", name="points")
    top, left, bottom, right = padding
    shape = (n, k // LANES, h + top + bottom - 2, wd + left + right - 2, LANES)
    tiles_in = winograd.data_transform(data, m, padding)
    products = winograd.batched_gemm(tiles_in, winograd.weight_transform(points, kernel))
    out = winograd.output_transform(products, m, shape)
    lib = tvm.compile(te.create_prim_func([data, kernel, points, out]), target="llvm")
    wb = w.reshape(k // LANES, LANES, c, 3, 3).transpose(0, 2, 3, 4, 1)[:, :, :, :, None, :]
    got = tvm.runtime.tensor(np.full(shape, np.nan, "float32"))  # garbage first
    lib(tvm.runtime.tensor(_blocked(x)), tvm.runtime.tensor(wb.copy()),
        tvm.runtime.tensor(winograd.weight_points(m)), got)
    result = got.numpy().transpose(0, 1, 4, 2, 3).reshape(n, k, shape[2], shape[3])
    if scheduled:  # the scheduled input transform writes what the plain one does, exactly
        plain = tvm.compile(te.create_prim_func([data, tiles_in]), target="llvm")
        transform, shape_out = winograd.scheduled_data_transform(data, m, padding)
        assert shape_out == [int(d) for d in tiles_in.shape]
        fast = tvm.compile(transform, target="llvm")
        want, have = (tvm.runtime.tensor(np.full([int(d) for d in tiles_in.shape], v, "float32"))
                      for v in (np.nan, -1.0))
        plain(tvm.runtime.tensor(_blocked(x)), want)
        fast(tvm.runtime.tensor(_blocked(x)), have)
        np.testing.assert_array_equal(have.numpy(), want.numpy())
    return result


@pytest.mark.parametrize("m", winograd.TILES)
@pytest.mark.parametrize(("shape", "padding"), [
    ((1, 32, 16, 16), (1, 1, 1, 1)),   # tiles that divide the image
    ((2, 16, 7, 9), (1, 1, 1, 1)),     # two images, the last tiles cut
    ((1, 16, 10, 9), (1, 0, 2, 1)),    # padding on some sides only
    ((1, 16, 3, 3), (0, 0, 0, 0)),     # one output pixel
])
def test_f_m_computes_the_convolution_within_a_few_roundoffs(m, shape, padding):
    rng = np.random.default_rng(m)
    x = rng.standard_normal(shape).astype("float32")
    w = rng.standard_normal((32, shape[1], 3, 3)).astype("float32")
    want = _direct(x, w, padding)
    got = _winograd(x, w, m, padding, scheduled=True)
    # each output sums C*9 products; the transforms add a few roundoffs of the terms' size
    bound = 64 * np.finfo(np.float32).eps * np.sqrt(shape[1] * 9) * np.abs(want).max()
    assert np.abs(got - want).max() <= bound


def test_the_tile_is_chosen_by_what_it_saves_against_the_bytes_it_adds():
    # a large image: F(4, 3)'s 4x fewer multiply-adds win
    assert winograd.tile_for(1, 64, 64, 56, 56) == 4
    # a network's last layers (7x7, 512 channels): F(4, 3)'s weights, 4x the direct
    # convolution's, take longer to read than its arithmetic; F(2, 3)'s, 16/9, do not
    assert winograd.tile_for(1, 512, 512, 7, 7) == 2
    # an image of 2x2 outputs: any tile's weights cost more than the products saved
    assert winograd.tile_for(1, 512, 512, 2, 2) is None
    # a small layer: the two extra functions cost more than the products saved
    assert winograd.tile_for(1, 16, 16, 8, 8) is None
    # ... unless a batch of images shares them
    assert winograd.tile_for(16, 512, 512, 2, 2) is not None


def _model(path, channels=32, size=32):
    """3x3 conv + bias + ReLU, another 3x3 conv + the first's output (a residual add)."""
    from graphs import ConvGraph
    from onnx import helper

    graph = ConvGraph(seed=3, scale=0.1)
    first = graph.conv("c1", "x", channels, channels, 3, pad=1)
    graph.nodes.append(helper.make_node("Relu", [first], ["r1"]))
    second = graph.conv("c2", "r1", channels, channels, 3, pad=1)
    graph.nodes.append(helper.make_node("Add", [second, "r1"], ["y"]))
    return graph.save(path, (1, channels, size, size), (1, channels, size, size))


def test_a_models_3x3_convolutions_become_a_tuned_gemm_between_transforms(tmp_path,
                                                                         monkeypatch):
    from gta_core.frontends import fuse, load_onnx, model_tasks

    model = load_onnx(_model(tmp_path / "m.onnx"))
    fused = fuse(model.mod, LANES)
    names = {gv.name_hint for gv, _ in fused.functions_items()}
    tasks = {t.name: t for t in model_tasks(fused)}
    # the input transform is scheduled already: no task; the GEMM is one, its anchor found
    assert "winograd_data" in names and "winograd_data" not in tasks
    assert tasks["winograd_gemm"].weight == 2 and tasks["winograd_gemm"].workload.main_block
    # bias, ReLU and residual add ride on the output transforms: no pass of their own
    outputs = [name for name in tasks if name.startswith("fused_winograd_output_add")]
    assert len(outputs) == 2 and any(name.endswith("relu") for name in outputs)
    assert set(tasks) - set(outputs) - {"winograd_gemm"} == {
        name for name in tasks if name.startswith("te_layout_transform")}
    monkeypatch.setenv("GTA_WINOGRAD", "0")
    direct = {t.name for t in model_tasks(fuse(model.mod, LANES))}
    assert not any("winograd" in name for name in direct)


def test_a_model_compiled_through_winograd_matches_onnxruntime(tmp_path):
    from gta_core.frontends import load_onnx
    from gta_core.model_compile import compile_model

    model = load_onnx(_model(tmp_path / "m.onnx"))
    (tmp_path / "db").mkdir()
    _, report = compile_model(model, "avx512", tmp_path / "db")  # TVM's defaults, checked
    assert report.checked_against == "onnxruntime"
    assert report.max_error <= report.tolerance
    assert any("winograd_gemm" in f.name for f in report.functions)
    # the input transform is listed as scheduled as GTA writes it, not as a default
    assert [f.schedule for f in report.functions if f.name == "winograd_data"] == ["written"]
