"""Cost models behind the ``gta_register_cost_models`` hook."""

from .entry import CostModelEntry

__all__ = ["CostModelEntry"]
