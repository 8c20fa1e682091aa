"""Build workers kept from one batch to the next (gta_core.measure.build_pool)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tvm.s_tir import meta_schedule as ms

from gta_core.measure import MeasureSettings, make_builder
from gta_core.measure.build_pool import PooledBuilder
from gta_core.measure.runners import closed_after


def _recording_build(record: str):
    """A build function that leaves a file named after the worker's pid in ``record`` and
    refuses a module whose function is named ``refused``."""
    def build(mod, target, params):
        # Nested, so cloudpickle ships it by value to the worker; runs there.
        from gta_core.measure.runners import build_candidate

        Path(record, str(os.getpid())).touch()
        if "refused" in [gv.name_hint for gv in mod.get_global_vars()]:
            raise ValueError("refused on purpose")
        return build_candidate(mod, target, params)
    return build


def _inputs(*names: str) -> list:
    """One small module per name, its function so named."""
    import tvm
    from tvm import te

    a = te.placeholder((64,), "float32", name="A")
    add_one = te.create_prim_func([a, te.compute((64,), lambda i: a[i] + 1.0, name="B")])
    return [ms.builder.BuilderInput(tvm.IRModule({name: add_one.with_attr("global_symbol", name)}),
                                    tvm.target.Target("llvm")) for name in names]


def test_a_pooled_builder_keeps_its_workers_until_they_are_used_up(tmp_path):
    builder = PooledBuilder(max_workers=1, timeout_sec=120, maximum_uses=3,
                            f_build=_recording_build(str(tmp_path)))
    first = builder.build(_inputs("main"))
    assert first[0].error_msg is None and Path(first[0].artifact_path).exists()
    # one worker for the three builds of two batches, a failed one among them
    second = builder.build(_inputs("refused", "main"))
    assert "refused on purpose" in second[0].error_msg
    assert second[0].error_msg.startswith("LocalBuilder: An exception occurred")
    assert second[1].error_msg is None
    assert len(list(tmp_path.iterdir())) == 1
    # used up: the next batch builds on a new worker
    assert builder.build(_inputs("main"))[0].error_msg is None
    assert len(list(tmp_path.iterdir())) == 2
    builder.close()
    assert not builder.running


def test_a_pooled_builder_lets_its_workers_go_when_idle(tmp_path):
    builder = PooledBuilder(max_workers=1, timeout_sec=120, idle_s=0.5,
                            f_build=_recording_build(str(tmp_path)))
    assert builder.build(_inputs("main"))[0].error_msg is None
    assert builder.running
    deadline = time.monotonic() + 30
    while builder.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not builder.running
    assert builder.build(_inputs("main"))[0].error_msg is None  # new workers, on demand
    assert len(list(tmp_path.iterdir())) == 2
    builder.close()


def test_a_builder_closed_after_its_block_holds_no_workers(tmp_path):
    with closed_after(PooledBuilder(max_workers=1, timeout_sec=120,
                                    f_build=_recording_build(str(tmp_path)))) as builder:
        assert builder.build(_inputs("main"))[0].error_msg is None
        assert builder.running
    assert not builder.running
    with closed_after(object()):  # a builder that keeps nothing has nothing to close
        pass


def test_make_builder_gives_a_pooled_builder_with_the_settings():
    builder = make_builder(MeasureSettings(builder_workers=1, build_timeout_s=7))
    assert isinstance(builder, PooledBuilder)
    assert (builder.max_workers, builder.timeout_sec) == (1, 7)
    assert not builder.running  # no worker before the first build
