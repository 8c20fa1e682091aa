"""A sampled CPU program's estimated time: footprints, traffic into a cache, and the bounds
the estimate keeps on real samples of a design space."""

from __future__ import annotations

import pytest
from searches import first_mapping_search

from gta_core.mapping.access import Access
from gta_core.pruning.register_use import span
from gta_core.scheduler.search import SearchSettings
from gta_core.scheduler.tile_cost import _traffic, estimated_cycles


def test_a_window_spans_its_range_and_a_mixed_radix_its_product():
    window = (("ry", 1), ("y", 1))
    assert span(window, {"y": 4, "ry": 3}) == 6
    radix = (("rc", 16), ("rl", 1))
    assert span(radix, {"rc": 2, "rl": 16}) == 32
    assert span(radix, {"rc": 2, "rl": 1}) == 2  # not the 17 of its range
    assert span((), {}) == 1


def _gemm():
    a = Access("A", "float32", ((("i", 1),), (("k", 1),)))
    b = Access("B", "float32", ((("k", 1),), (("j", 1),)))
    c = Access("C", "float32", ((("i", 1),), (("j", 1),)), output=True)
    return [(a, 1), (b, 1), (c, 2)]


def _levels(order, inner):
    """Each axis's extent inside order[k:] and the innermost ``inner``."""
    levels = []
    for k in range(len(order) + 1):
        ext = dict(inner)
        for name, extent in order[k:]:
            ext[name] = ext.get(name, 1) * extent
        levels.append(ext)
    return levels


def test_traffic_is_the_footprint_where_it_fits_and_refetched_where_it_does_not():
    accesses = _gemm()
    order = [("i", 64), ("k", 64)]  # rows outermost; each row streams all of B
    levels = _levels(order, {"j": 64})
    b = 64 * 64 * 4
    fits = _traffic(accesses, levels, order, capacity=1 << 20)
    assert fits == 64 * 64 * 4 + b + 2 * 64 * 64 * 4  # every operand once
    spills = _traffic(accesses, levels, order, capacity=8 << 10)  # a row's body fits, B not
    assert spills == pytest.approx(64 * (64 * 4 + b + 2 * 64 * 4))  # B again for every row


@pytest.fixture(scope="module")
def samples():
    search = first_mapping_search(
        "conv2d:N=1,C=256,H=14,W=14,K=256,R=3,S=3,pad=1,dtype=float32",
        SearchSettings(start_samples=12))
    task = search.task
    context = search._start()
    search._ranked = lambda context, drawn: drawn
    drawn = search._sample_start(context, 12)
    search.close()
    assert drawn
    return task, drawn


def test_every_estimate_is_at_least_the_intrinsic_issue_bound(samples):
    task, drawn = samples
    resources = task.target.resources
    from gta_core.mapping.access import intrinsic_computation
    from gta_core.mapping.builtin import workload_computation

    op = workload_computation(task.workload)
    per_call = 1
    for axis in intrinsic_computation(task.intrinsic).axes:
        per_call *= axis.extent
    calls = 1
    for axis in op.axes:
        calls *= axis.extent
    floor = calls / per_call / (resources.vector_issue_per_cycle or 2) / resources.cores
    for candidate in drawn:
        cycles = estimated_cycles(candidate.sch, task.workload, task.mapping, task.intrinsic,
                                  resources)
        assert cycles >= floor * 0.999


def _estimates(samples, **changed) -> list[tuple[float, float]]:
    """Each sample's estimate with the target's resources, and with ``changed`` in them."""
    task, drawn = samples
    resources = task.target.resources
    other = resources.model_copy(update=changed)
    return [(estimated_cycles(c.sch, task.workload, task.mapping, task.intrinsic, resources),
             estimated_cycles(c.sch, task.workload, task.mapping, task.intrinsic, other))
            for c in drawn]


def test_smaller_caches_never_make_a_program_faster(samples):
    caches = samples[0].target.resources.cache_bytes
    pairs = _estimates(samples, cache_bytes={level: size // 16 for level, size in caches.items()})
    assert all(tight >= big for big, tight in pairs)
    assert any(tight > big for big, tight in pairs)  # its 4.7 MB of weights spill somewhere


def test_a_register_tile_too_short_for_the_fma_latency_is_estimated_slower(samples):
    # Each call waits on the last into its accumulator: with a latency of 64 cycles no
    # tile of these samples hides it (they hold at most 32 accumulators), and every
    # estimate bounded by issue grows; none shrinks.
    pairs = _estimates(samples, vector_latency_cycles=64)
    assert all(waiting >= quick for quick, waiting in pairs)
    assert any(waiting > quick for quick, waiting in pairs)
