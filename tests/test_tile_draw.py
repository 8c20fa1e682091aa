"""A task's start samples are drawn inside the tile constraints (gta_core.scheduler.tile_draw):
the drawn tiles are the replayed program's, and the constraints judge them as they judge the
program."""

from __future__ import annotations

import random
from itertools import product
from math import prod

import pytest
from searches import first_mapping_search

from gta_core.generation import ScheduleContext
from gta_core.pruning.cpu import tiled_loops
from gta_core.scheduler.tile_draw import SketchDraw, _tilings, draw_inside

SPECS = ["conv2d:N=1,C=32,H=14,W=14,K=32,R=3,S=3,pad=1,stride=2,dtype=int8",
         "gemm:M=48,N=64,K=96,dtype=int8",
         "conv2d:N=1,C=16,H=12,W=12,K=32,R=3,S=3,pad=1,dtype=float32"]


@pytest.fixture(scope="module", params=SPECS)
def started(request):
    search = first_mapping_search(request.param)
    context = search._start()
    yield search, context
    search.close()


def test_the_drawn_tiles_are_the_replayed_programs_in_its_order(started):
    search, context = started
    sketches = search._draws.sketches
    assert sketches and None not in sketches
    rng = random.Random(0)
    replayed = 0
    for sketch in sketches:
        for _ in range(3):
            drawn = sketch.draw(rng)
            sch = sketch.replay(context.mod, drawn, [], seed=7)
            assert sch is not None
            program = [loop for loop in tiled_loops(sch) if loop.level != "S0"]
            assert program == [loop for loop in sketch.tiles(drawn) if loop.level != "S0"]
            parallel = prod(loop.extent for loop in tiled_loops(sch) if loop.level == "S0")
            assert parallel == prod(loop.extent for loop in sketch.tiles(drawn)
                                    if loop.level == "S0")  # fused into one loop there
            replayed += 1
    assert replayed == 3 * len(sketches)


def test_the_tile_constraints_judge_drawn_tiles_as_they_judge_the_program(started):
    search, context = started
    task, check = search.task, search._draws.space.check
    tile_only = [c for c in check.constraints if c.reads_tiles_only]
    assert {c.name for c in tile_only} >= {"register-tile", "register-tile-latency",
                                           "cache-working-set"}
    rng = random.Random(1)
    sketches = search._draws.sketches
    verdicts = set()
    for _ in range(40):
        sketch = rng.choice(sketches)
        drawn = sketch.draw(rng)
        sch = sketch.replay(context.mod, drawn, [], seed=3)
        on_program = ScheduleContext(sch=sch, block=task.workload.main_block,
                                     target=task.target, workload=task.workload,
                                     intrinsic=task.intrinsic, mapping=task.mapping)
        passes = all(c.check(on_program) is None for c in tile_only)
        assert check.fits(sketch.tiles(drawn)) == passes
        verdicts.add(passes)
    assert verdicts == {True, False}  # both kinds were drawn


def test_draws_are_distinct_and_inside_the_constraints(started):
    search, _ = started
    sketches = search._draws.sketches
    judged = []

    def fits(tiles):
        judged.append(tiles)
        return search._draws.space.check.fits(tiles)

    draws = draw_inside(sketches, 12, fits, random.Random(2))
    assert len(draws) == len(set(draws)) == 12
    assert all(search._draws.space.check.fits(sketches[k].tiles(drawn)) for k, drawn in draws)
    assert len(judged) > 12  # some draws were rejected before any replay
    again = draw_inside(sketches, 12, fits, random.Random(2), exclude=set(draws[:6]))
    assert not set(again) & set(draws[:6]) and set(draws[6:]) <= set(again)
    assert draw_inside(sketches, 5, lambda tiles: False, random.Random(2), attempts=3) == []


def test_a_sketch_whose_tiles_no_rule_annotated_is_left_to_metaschedules_replay():
    import tvm
    from tvm import te
    from tvm.s_tir import Schedule

    a = te.placeholder((64, 64), name="a")
    b = te.compute((64, 64), lambda i, j: a[i, j] * 2.0, name="b")
    sch = Schedule(tvm.IRModule({"main": te.create_prim_func([a, b])}))
    i, _ = sch.get_loops(sch.get_sblock("b"))
    sch.split(i, sch.sample_perfect_tile(i, n=2))
    assert SketchDraw.of(sch) is None


@pytest.mark.parametrize("extent,n,innermost", [(1, 3, 8), (12, 2, 64), (48, 3, 8),
                                                (36, 3, 0), (7, 2, 4)])
def test_tilings_are_every_perfect_tiling_within_the_innermost_bound(extent, n, innermost):
    found = _tilings(extent, n, innermost)
    expected = {t for t in product(range(1, extent + 1), repeat=n)
                if prod(t) == extent and (innermost <= 0 or t[-1] <= innermost)}
    assert set(found) == expected and len(found) == len(expected)
