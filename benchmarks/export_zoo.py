"""Write the offline model zoo (gta_core.bench.zoo) as ONNX files, random weights, no downloads.

    python benchmarks/export_zoo.py OUT_DIR [--int8] [NAME ...]

Each model is built from its definition with a fixed seed and exported with opset 17;
`gta tune --model OUT_DIR/resnet50.onnx ...` then takes it. With --int8, each is also
quantized as onnxruntime's quantize_static writes it for CPUs (QDQ, u8 activations, s8
weights per channel, calibrated on random inputs) to OUT_DIR/NAME-int8.onnx.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gta_core.bench.zoo import ZOO, export_onnx, export_qdq


def main(argv: list[str]) -> int:
    int8 = "--int8" in argv
    argv = [a for a in argv if a != "--int8"]
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out, names = Path(argv[0]), argv[1:] or list(ZOO)
    unknown = [n for n in names if n not in ZOO]
    if unknown:
        print(f"unknown model(s) {', '.join(unknown)}; the zoo has {', '.join(ZOO)}",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        export_onnx(name, out / f"{name}.onnx")
        print(f"{out / f'{name}.onnx'}: {ZOO[name].description}")
        if int8:
            export_qdq(name, out / f"{name}.onnx", out / f"{name}-int8.onnx")
            print(f"{out / f'{name}-int8.onnx'}: the same, quantized (QDQ, u8 x s8)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
