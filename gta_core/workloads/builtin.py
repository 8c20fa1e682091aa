"""The core's operators, registered through the same hook a third party uses."""

from __future__ import annotations

from ..hookspecs import hookimpl
from . import BUILTIN_OPERATORS


@hookimpl
def gta_register_workloads(register):
    for operator in BUILTIN_OPERATORS:
        register(operator)
