"""How a cost model is registered: a name and a factory."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from ..models import NAME_PATTERN


class CostModelEntry(BaseModel):
    """A named cost model; ``factory()`` builds a fresh one for a tuning run.

    The factory returns an object MetaSchedule's search can use as a cost
    model (``tvm.s_tir.meta_schedule.cost_model.CostModel``, e.g. a
    ``PyCostModel`` subclass).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    factory: Callable[[], object]
