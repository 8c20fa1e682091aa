"""The core's generation rules, registered through the same hook as any plugin's."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .cpu import CPU_RULES
from .epilogue import FuseEpilogue
from .padding_at_tile import PaddingAtTile
from .stage_lanes import MarkWriteBackLanes


@hookimpl
def gta_register_rules(register):
    for rule in (*CPU_RULES, FuseEpilogue(), MarkWriteBackLanes(), PaddingAtTile()):
        register(rule)
