"""Entry point of the ``gta-rules`` pack: registers its rules and constraints."""

from __future__ import annotations

from gta_core.hookspecs import hookimpl

from .constraints import ParallelBalance
from .rules import PackingAtTile


@hookimpl
def gta_register_rules(register):
    register(PackingAtTile())


@hookimpl
def gta_register_constraints(register):
    register(ParallelBalance())
