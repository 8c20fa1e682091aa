"""Operators around a blocked convolution, one small model each, exported by torch to ONNX,
compiled with TVM's default schedules (no records) in the blocked layout and checked
against onnxruntime: the graph rewrites (the layout, its fences, channel widening) keep
every one of them right and compilable."""

from __future__ import annotations

import warnings

import pytest

from gta_core.frontends import LayoutFallbackWarning, load_onnx

torch = pytest.importorskip("torch")
F = torch.nn.functional

# Each takes the module and a conv's 16-channel output (1, 16, 14, 18).
OPS = {
    "max-pool-ceil": lambda m, y: F.max_pool2d(y, 3, 2, ceil_mode=True),
    "avg-pool-excluding-pads": lambda m, y: F.avg_pool2d(y, 3, 2, 1, count_include_pad=False),
    "instance-norm": lambda m, y: F.instance_norm(y),
    "group-norm": lambda m, y: m.group_norm(y),
    "prelu-per-channel": lambda m, y: m.prelu(y),
    "softmax-over-channels": lambda m, y: torch.softmax(y, 1),
    "minus-channel-mean": lambda m, y: y - y.mean(1, keepdim=True),
    "channel-variance-norm": lambda m, y: (y - y.mean(1, keepdim=True))
    / (y.var(1, keepdim=True) + 1e-5).sqrt(),
    "l2-normalise-channels": lambda m, y: F.normalize(y, dim=1),
    "channel-max-plus": lambda m, y: y + y.amax(1).unsqueeze(1),
    "spatial-attention": lambda m, y: y * torch.sigmoid(m.spatial(torch.cat(
        [y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1))),
    "times-sample-mean": lambda m, y: y * y.mean((1, 2, 3), keepdim=True),
    "plus-pixel-map": lambda m, y: y + m.pixels,
    "upsample-nearest": lambda m, y: F.interpolate(y, scale_factor=2, mode="nearest"),
    "split-and-swap": lambda m, y: torch.cat(torch.split(y, [4, 12], 1)[::-1], 1),
    "channel-slice": lambda m, y: y[:, 2:14],
    "pixel-shuffle-conv": lambda m, y: m.after_shuffle(F.pixel_shuffle(y, 2)),
    "hardswish": lambda m, y: F.hardswish(y),
    "transpose-hw": lambda m, y: y.transpose(2, 3),
    "depthwise-multiplier-2": lambda m, y: m.depthwise2(y),
    "stride-3-odd": lambda m, y: m.stride3(y),
    "kernel-1x7": lambda m, y: m.kernel17(y),
    "transposed-conv": lambda m, y: m.transposed(y),
}


class Around(torch.nn.Module):
    """x (1, 8, 14, 18) -> a 3x3 conv to 16 channels -> the op -> a 1x1 conv to 8 channels
    where the op leaves channels that divide by 8 (so a blocked layer reads its output),
    a ReLU otherwise."""

    def __init__(self, op: str) -> None:
        super().__init__()
        nn = torch.nn
        self.op = op
        self.conv = nn.Conv2d(8, 16, 3, 1, 1)
        self.group_norm, self.prelu = nn.GroupNorm(4, 16), nn.PReLU(16)
        self.spatial = nn.Conv2d(2, 1, 7, 1, 3)
        self.pixels = nn.Parameter(torch.randn(14, 18))
        self.after_shuffle = nn.Conv2d(4, 8, 3, 1, 1)
        self.depthwise2 = nn.Conv2d(16, 32, 3, 1, 1, groups=16)
        self.stride3 = nn.Conv2d(16, 24, 5, 3, 1)
        self.kernel17 = nn.Conv2d(16, 16, (1, 7), 1, (0, 3))
        self.transposed = nn.ConvTranspose2d(16, 16, 3, 2, 1, output_padding=1)
        self.head = None  # set by the test: a 1x1 conv to 8 channels where they divide

    def forward(self, x):
        y = OPS[self.op](self, self.conv(x))
        return self.head(y) if self.head is not None else y.relu()


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning")
@pytest.mark.parametrize("op", sorted(OPS))
def test_an_op_around_blocked_convolutions_compiles_and_matches_onnxruntime(
        op, compile_on_avx2, tmp_path):
    torch.manual_seed(0)
    module = Around(op).eval()
    x = torch.randn(1, 8, 14, 18)
    channels = OPS[op](module, module.conv(x)).shape[1]
    if channels % 8 == 0:
        module.head = torch.nn.Conv2d(channels, 8, 1)
    path = tmp_path / "m.onnx"
    torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayoutFallbackWarning)  # blocked, not fallen back
        report = compile_on_avx2(load_onnx(str(path)))
    assert report.max_error <= report.tolerance


class SortScan(torch.nn.Module):
    """A conv, then the five largest of each sample's outputs and a running sum along the
    width: a top-k and a cumulative sum, which TVM writes as opaque TIR."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 16, 3, 1, 1)

    def forward(self, x):
        y = self.conv(x)
        return torch.topk(y.flatten(1), 5).values, y.cumsum(-1)


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript:DeprecationWarning")
def test_sorts_and_scans_compile_as_tvm_writes_them(avx2_registry, compile_on_avx2, tmp_path):
    """TVM's LegalizeOps leaves ``topk`` and ``cumsum`` to its CPU dispatch, which writes
    them as opaque TIR (a packed call, bare loops): no task of the model, and the
    weight-prepack split passes them by; the model compiles and matches onnxruntime."""
    from gta_core.frontends import channel_block, fuse, model_tasks

    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    torch.onnx.export(SortScan().eval(), (torch.randn(1, 8, 6, 10),), str(path),
                      input_names=["x"], opset_version=17, dynamo=False)
    model = load_onnx(str(path))
    block = channel_block(avx2_registry.target("avx2"))
    names = [t.name for t in model_tasks(fuse(model.mod, block))]
    assert names and not any("topk" in n or "cumsum" in n for n in names), names
    report = compile_on_avx2(model)
    assert report.max_error <= report.tolerance
