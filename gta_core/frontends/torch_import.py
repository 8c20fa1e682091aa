"""PyTorch modules in: traced by ``torch.export``, imported by TVM's Relax torch frontend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .model import Model, ModelError, ModelInput
from .onnx_import import _first_line


def from_torch(module: Any, example_inputs: Sequence[Any], name: str | None = None) -> Model:
    """``module`` (a ``torch.nn.Module``, put in eval mode) traced on ``example_inputs`` (a
    tuple of tensors, whose shapes and dtypes the model is compiled for) and imported into
    Relax with its weights bound as constants.

    Raises :class:`ModelError` (one line) when the arguments are not a module and tensors,
    when ``torch.export`` cannot trace the module, or when TVM cannot import an operator.
    """
    try:
        import torch
    except ImportError:
        raise ModelError("PyTorch models need torch: pip install torch") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    args = tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) \
        else (example_inputs,)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        raise ModelError("example_inputs must be one or more torch.Tensor, got "
                         f"{', '.join(type(a).__name__ for a in args) or 'nothing'}")
    module = module.eval()
    label = name or type(module).__name__
    try:
        with torch.no_grad():
            exported = torch.export.export(module, args)
    except Exception as exc:  # noqa: BLE001 - export raises many kinds; name the first line
        raise ModelError(f"torch.export could not trace {label} ({_first_line(exc)})") from None
    from tvm.relax.frontend.torch import from_exported_program

    try:
        mod = from_exported_program(exported, unwrap_unit_return_tuple=True,
                                    custom_convert_map=_converters())
    except Exception as exc:  # noqa: BLE001 - unsupported operators and the like
        raise ModelError(f"TVM's PyTorch importer failed on {label} ({_first_line(exc)})"
                         ) from None
    inputs = [ModelInput(f"input{i}", tuple(int(d) for d in a.shape),
                         str(a.dtype).removeprefix("torch.")) for i, a in enumerate(args)]
    return Model(name=label, mod=mod, inputs=inputs, source="torch", origin=module)


def _converters() -> dict:
    """Converters for ATen ops TVM 0.27's importer lacks: ``amax``/``amin`` (a maximum over
    some axes, as ``torch.amax`` and ``x.amax(dim)`` write it), onto Relax's ``max``/``min``."""
    from tvm import relax

    def reduction(op):
        def convert(node, importer):
            args = importer.retrieve_args(node)
            dim = args[1] if len(node.args) > 1 else node.kwargs.get("dim", ())
            keepdim = args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
            axes = list(dim) if isinstance(dim, (list, tuple)) else [dim]
            return importer.block_builder.emit(op(args[0], axes or None, keepdims=keepdim))
        return convert

    return {"amax.default": reduction(relax.op.max), "amin.default": reduction(relax.op.min)}
