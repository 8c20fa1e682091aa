"""Entry point of the ``gta-rules`` pack: registers its rules and constraints."""

from __future__ import annotations

from gta_core.sdk import hookimpl

from .constraints import ParallelBalance
from .rules import PackingAtTile

GTA_API_VERSION = "1.0"  # the gta_core.sdk this plugin is written for


@hookimpl
def gta_register_rules(register):
    register(PackingAtTile())


@hookimpl
def gta_register_constraints(register):
    register(ParallelBalance())
