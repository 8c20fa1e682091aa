"""The core's default cost model, registered through the same hook as any plugin's."""

from __future__ import annotations

from ..hookspecs import hookimpl
from .entry import CostModelEntry


def _xgboost():
    from tvm.s_tir.meta_schedule.cost_model import XGBModel
    from tvm.s_tir.meta_schedule.feature_extractor import PerStoreFeature

    # Trained from the 16th trial on, not MetaSchedule's 100th: one model serves
    # every mapping of a run, and budgets here are tens of trials per workload.
    return XGBModel(extractor=PerStoreFeature(), adaptive_training=True, num_warmup_samples=16)


@hookimpl
def gta_register_cost_models(register):
    register(CostModelEntry(
        name="xgb",
        description="XGBoost on MetaSchedule's per-store features, retrained as trials arrive",
        factory=_xgboost,
    ))
