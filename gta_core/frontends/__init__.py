"""Whole networks in: ONNX files and PyTorch modules -> Relax -> fused tasks."""

from __future__ import annotations

from .layout import channel_block
from .model import Model, ModelError, ModelInput, parse_input_shapes
from .onnx_import import load_onnx
from .tasks import LayoutFallbackWarning, ModelTask, fuse, model_tasks, written_bytes
from .torch_import import from_torch

__all__ = ["LayoutFallbackWarning", "Model", "ModelError", "ModelInput", "ModelTask",
           "channel_block", "from_torch",
           "fuse", "load_onnx", "model_tasks", "parse_input_shapes", "written_bytes"]
