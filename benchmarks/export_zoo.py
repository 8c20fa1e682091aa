"""Write the offline model zoo (gta_core.bench.zoo) as ONNX files, random weights, no downloads.

    python benchmarks/export_zoo.py OUT_DIR [NAME ...]

Each model is built from its definition with a fixed seed and exported with opset 17;
`gta tune --model OUT_DIR/resnet50.onnx ...` then takes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gta_core.bench.zoo import ZOO, export_onnx


def main(argv: list[str]) -> int:
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
