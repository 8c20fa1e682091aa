"""A started TaskSearch on a workload's first kept avx512 mapping, nothing measured: what the
search's unit tests draw from."""

from __future__ import annotations

import tempfile

from tvm.s_tir import meta_schedule as ms

from gta_core.database import RecordStore
from gta_core.mapping import mapping_candidates
from gta_core.plugins import default_registry
from gta_core.scheduler.search import SearchSettings, TaskSearch
from gta_core.scheduler.space import Task
from gta_core.workloads import parse_workload


def first_mapping_search(spec: str, settings: SearchSettings | None = None,
                         index: int = 0) -> TaskSearch:
    """A TaskSearch over ``spec``'s first kept mapping (or its ``index``-th), with every
    rule and constraint, a random cost model and no builder or runner; call ``_start()``
    for its context."""
    registry = default_registry()
    workload = parse_workload(spec, registry.operators)
    mapping = [c for c in mapping_candidates(workload, "avx512", registry)
               if c.status == "kept"][index]
    task = Task(workload, mapping, registry.intrinsics[mapping.intrinsic],
                registry.target("avx512"))
    return TaskSearch(task, store=RecordStore(tempfile.mkdtemp()), builder=None, runner=None,
                      cost_model=ms.cost_model.RandomModel(),
                      rules=list(registry.rules.values()),
                      constraints=list(registry.constraints.values()),
                      settings=settings or SearchSettings())
