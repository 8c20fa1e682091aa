"""Intrinsic mapping: enumerate how an operator maps onto an intrinsic, and realise it."""

from .candidates import mapping_candidates
from .enumerate import EnumerationSettings, enumerate_mappings

__all__ = ["EnumerationSettings", "enumerate_mappings", "mapping_candidates"]
