"""The core's constraints, registered through the same hook as any plugin's."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .cpu import CPU_CONSTRAINTS


@hookimpl
def gta_register_constraints(register):
    for constraint in CPU_CONSTRAINTS:
        register(constraint)
