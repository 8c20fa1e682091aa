"""The offline model zoo: standard networks built from their definitions, random weights.

Nothing is downloaded (the machines reach no model hub) and torchvision does not import
with the torch wheel installed here, so the definitions are written out in plain torch,
following torchvision's ResNet (v1.5: the stride on the 3x3) and MobileNet-V2 and the BERT
paper's encoder. Weights come from a fixed seed; BatchNorm statistics are randomised too,
so folding them is real arithmetic, not a multiplication by one.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass


def _torch():
    import torch

    return torch


def _randomise_norms(module) -> None:
    torch = _torch()
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1):
    nn = _torch().nn
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout))


def resnet(layers: tuple[int, ...], bottleneck: bool, classes: int = 1000):
    """torchvision's ResNet: ``layers`` blocks per stage, basic or bottleneck blocks."""
    torch = _torch()
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin: int, width: int, stride: int) -> None:
            super().__init__()
            cout = width * 4 if bottleneck else width
            if bottleneck:
                self.body = nn.Sequential(_conv_bn(cin, width, 1), nn.ReLU(),
                                          _conv_bn(width, width, 3, stride), nn.ReLU(),
                                          _conv_bn(width, cout, 1))
            else:
                self.body = nn.Sequential(_conv_bn(cin, width, 3, stride), nn.ReLU(),
                                          _conv_bn(width, width, 3))
            self.down = (_conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout
                         else nn.Identity())
            self.out_channels = cout

        def forward(self, x):
            return torch.relu(self.body(x) + self.down(x))

    stages, cin = [], 64
    for stage, count in enumerate(layers):
        for i in range(count):
            block = Block(cin, 64 * 2**stage, 2 if i == 0 and stage > 0 else 1)
            stages.append(block)
            cin = block.out_channels
    return nn.Sequential(_conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1), *stages,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes))


def mobilenet_v2(classes: int = 1000):
    """torchvision's MobileNet-V2 (width 1.0): inverted residuals with depthwise 3x3."""
    torch = _torch()
    nn = torch.nn

    class Inverted(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers = [] if expand == 1 else [_conv_bn(cin, hidden, 1), nn.ReLU6()]
            layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(),
                       _conv_bn(hidden, cout, 1)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    # (expansion, channels, repeats, first stride)
    settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))
    layers, cin = [_conv_bn(3, 32, 3, 2), nn.ReLU6()], 32
    for expand, cout, repeats, stride in settings:
        for i in range(repeats):
            layers.append(Inverted(cin, cout, stride if i == 0 else 1, expand))
            cin = cout
    layers += [_conv_bn(cin, 1280, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(1280, classes)]
    return nn.Sequential(*layers)


def bert_encoder(layers: int = 12, hidden: int = 768, heads: int = 12, ffn: int = 3072):
    """BERT-base's encoder stack (post-norm, GELU), on embeddings already looked up."""
    torch = _torch()
    nn = torch.nn

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(hidden, 3 * hidden)
            self.proj = nn.Linear(hidden, hidden)
            self.norm1 = nn.LayerNorm(hidden)
            self.up = nn.Linear(hidden, ffn)
            self.down = nn.Linear(ffn, hidden)
            self.norm2 = nn.LayerNorm(hidden)

        def forward(self, x):
            batch, seq, _ = x.shape
            q, k, v = self.qkv(x).reshape(batch, seq, 3, heads, hidden // heads) \
                .permute(2, 0, 3, 1, 4)
            scores = torch.matmul(q, k.transpose(-1, -2)) * (hidden // heads) ** -0.5
            context = torch.matmul(torch.softmax(scores, dim=-1), v)
            context = context.permute(0, 2, 1, 3).reshape(batch, seq, hidden)
            x = self.norm1(x + self.proj(context))
            return self.norm2(x + self.down(torch.nn.functional.gelu(self.up(x))))

    return nn.Sequential(*(Layer() for _ in range(layers)))


def tiny_convnet(classes: int = 10):
    """A small residual convnet (3x3 + BN + ReLU, 1x1 residual, pooling, linear) for tests:
    the network suite's machinery on a model that tunes in seconds."""
    torch = _torch()
    nn = torch.nn

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(_conv_bn(3, 16, 3, 2), nn.ReLU())
            self.body = nn.Sequential(_conv_bn(16, 16, 3), nn.ReLU(), _conv_bn(16, 16, 1))
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                      nn.Linear(16, classes))

        def forward(self, x):
            x = self.stem(x)
            return self.head(torch.relu(x + self.body(x)))

    return Tiny()


@dataclass(frozen=True)
class ZooModel:
    name: str
    build: Callable[[], object]
    input_shape: tuple[int, ...]
    description: str


ZOO = {
    "tiny": ZooModel("tiny", tiny_convnet, (1, 3, 16, 16), "a small residual convnet (tests)"),
    "resnet18": ZooModel("resnet18", lambda: resnet((2, 2, 2, 2), bottleneck=False),
                         (1, 3, 224, 224), "ResNet-18, batch 1, 224x224"),
    "resnet18-128": ZooModel("resnet18-128", lambda: resnet((2, 2, 2, 2), bottleneck=False),
                             (1, 3, 128, 128), "ResNet-18, batch 1, 128x128 (gta demo's)"),
    "resnet50": ZooModel("resnet50", lambda: resnet((3, 4, 6, 3), bottleneck=True),
                         (1, 3, 224, 224), "ResNet-50 (v1.5), batch 1, 224x224"),
    "mobilenetv2": ZooModel("mobilenetv2", mobilenet_v2, (1, 3, 224, 224),
                            "MobileNet-V2 (width 1.0), batch 1, 224x224"),
    "bert": ZooModel("bert", bert_encoder, (1, 128, 768),
                     "BERT-base encoder (12 layers), batch 1, sequence 128"),
}


def build_model(name: str, seed: int = 0):
    """The zoo's ``name`` with random weights from ``seed``, in eval mode."""
    torch = _torch()
    torch.manual_seed(seed)
    module = ZOO[name].build()
    _randomise_norms(module)
    return module.eval()


def export_onnx(name: str, path, seed: int = 0) -> None:
    """Write the zoo's ``name`` to ``path`` as ONNX (opset 17, the TorchScript exporter)."""
    torch = _torch()
    module = build_model(name, seed)
    example = torch.randn(*ZOO[name].input_shape)
    with torch.no_grad():
        torch.onnx.export(module, (example,), str(path), input_names=["x"],
                          output_names=["y"], opset_version=17, dynamo=False)


CALIBRATION_INPUTS = 8


def export_qdq(name: str, float_path, path, seed: int = 0) -> None:
    """Quantize the zoo's ``name``, exported at ``float_path``, to ``path`` as onnxruntime's
    ``quantize_static`` writes it for CPUs: QDQ form, u8 activations, s8 weights per
    channel, calibrated (min/max) on ``CALIBRATION_INPUTS`` random normal inputs."""
    import numpy as np
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    shape = ZOO[name].input_shape

    class RandomInputs(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(seed)
            self.feeds = iter([{"x": rng.standard_normal(shape).astype("float32")}
                               for _ in range(CALIBRATION_INPUTS)])

        def get_next(self):
            return next(self.feeds, None)

    # quantize_static advises, on the root logger, pre-processing (shape inference and
    # graph optimisation) for every model: the zoo's are exported clean, and the advice,
    # two lines a run, read as a problem with the bench.
    advice = _DropPreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        quantize_static(str(float_path), str(path), RandomInputs(),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().removeFilter(advice)


def quantize_torch(name: str, seed: int = 0, reference: bool = False):
    """The zoo's ``name`` quantized by PyTorch for its x86 backend (FX graph mode,
    ``get_default_qconfig_mapping("x86")``: u8 activations, s8 weights per channel, oneDNN's
    and FBGEMM's int8 kernels), calibrated on the inputs :func:`export_qdq` calibrates
    onnxruntime's on. ``reference``: the same quantization as PyTorch's reference model
    (``convert_to_reference_fx``: each quantized op computed in float between quantize and
    dequantize steps), whose distance from the float model bounds the int8 model's
    (:func:`gta_core.quantized_check.check_own_quantization`)."""
    import numpy as np

    torch = _torch()
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, convert_to_reference_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    shape = ZOO[name].input_shape
    rng = np.random.default_rng(seed)
    calibration = [torch.from_numpy(rng.standard_normal(shape).astype("float32"))
                   for _ in range(CALIBRATION_INPUTS)]
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice, every call
        warnings.simplefilter("ignore")
        prepared = prepare_fx(build_model(name, seed), get_default_qconfig_mapping("x86"),
                              (calibration[0],))
        with torch.no_grad():
            for x in calibration:
                prepared(x)
        return (convert_to_reference_fx if reference else convert_fx)(prepared)


class _DropPreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()
