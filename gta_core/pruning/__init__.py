"""Resource constraints, applied before measurement."""

from .constraint import Constraint

__all__ = ["Constraint"]
