"""A plugin's cost model, isolated: one that raises is named and replaced, tuning goes on.

The model runs inside MetaSchedule's search, so an exception from it would end the whole
tuning run. :func:`guarded` makes it and wraps it: a factory, ``update`` or ``predict``
that raises records the cause and hands every later call (that one included) to
MetaSchedule's random model, which ranks candidates no worse than an untrained model does.
"""

from __future__ import annotations

from typing import Any

from ..generation.engine import describe


def guarded(factory: Any) -> Any:
    """The model ``factory`` makes, behind the isolation described above; ``.failure`` is the
    cause or None."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.cost_model import PyCostModel, RandomModel

    @derived_object
    class GuardedCostModel(PyCostModel):
        def __init__(self) -> None:
            self.failure: str | None = None
            try:
                self.active = factory()
            except Exception as exc:  # noqa: BLE001 - reported, and tuning goes on
                self.failure = f"factory: {describe(exc)}"
                self.active = RandomModel()

        # What GTA's search reads to tell whether the model has warmed up (XGBoost's).
        @property
        def num_warmup_samples(self) -> int:
            return getattr(self.active, "num_warmup_samples", 0)

        @property
        def data_size(self) -> int:
            return getattr(self.active, "data_size", self.num_warmup_samples)

        def _call(self, method: str, *args: Any) -> Any:
            try:
                return getattr(self.active, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a plugin's model must not end tuning
                if self.failure is not None:
                    raise
                self.failure = f"{method}: {describe(exc)}"
                self.active = RandomModel()
                return getattr(self.active, method)(*args)

        def load(self, path: str) -> None:
            self._call("load", path)

        def save(self, path: str) -> None:
            self._call("save", path)

        def update(self, context, candidates, results) -> None:
            self._call("update", context, candidates, results)

        def predict(self, context, candidates):
            return self._call("predict", context, candidates)

    return GuardedCostModel()
