"""Timing a model's function with its data in the last-level cache, not in memory.

A compiled model calls its functions one after another, so when one runs, its weights were
last touched a whole inference ago: gone from each core's private caches (L1, L2), but
still in a shared last-level cache that holds the model. TVM's ``cache_flush_cpu_non_first_arg``
(``clflush`` of every argument but the first) sends them to memory instead, which is right
for a model larger than that cache and wrong for one that fits. On an Intel Xeon with a
480 MB L3, one program of ResNet-18's layer4 3x3 convolution (9.4 MB of weights, 4x4
outputs) took 686 us a call flushed and 279-301 us with its weights in L3; the program a
flushed search picked was timed at 760 us and ran at 440 us in the model.

:func:`scrub_private_caches` is the other preprocessor: every thread of TVM's pool rewrites
a buffer twice its core's L2, which pushes everything else out of the private caches (into
the L3 where the model fits), then the first argument is read back, as the previous
function just wrote it. It is registered as the global function :data:`PREPROC`, for
``time_evaluator``'s ``f_preproc``; :func:`run_evaluator` is MetaSchedule's run evaluator
with it, for the runner's worker processes.
"""

from __future__ import annotations

import itertools

import numpy as np
import tvm

from ..host import cpu_cache_bytes, cpu_cores

PREPROC = "gta.scrub_private_caches"
FLUSH_PREPROC = "gta.flush_to_memory"

_SCRUB: dict[str, object] = {}  # the compiled kernel and its buffer, made at first use


def _kernel(threads: int, floats: int):
    """A parallel loop over ``threads`` chunks, each rewriting ``floats`` floats of its own."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def scrub(a: T.Buffer((threads, floats), "float32")):
        for t in T.parallel(threads):
            for i in range(floats):
                with T.sblock("scrub"):
                    vt, vi = T.axis.remap("SS", [t, i])
                    a[vt, vi] = a[vt, vi] + T.float32(1)

    return tvm.compile(scrub, target="llvm")


def scrub_private_caches(*args) -> None:
    """Overwrite every core's private caches, then read ``args[0]`` back into them."""
    if not _SCRUB:
        caches = cpu_cache_bytes()
        private = max(caches.get("L2", 0), caches.get("L1", 0), 1 << 20)
        threads = cpu_cores()
        floats = 2 * private // 4
        _SCRUB["kernel"] = _kernel(threads, floats)
        _SCRUB["buffer"] = tvm.runtime.tensor(np.zeros((threads, floats), "float32"))
    _SCRUB["kernel"](_SCRUB["buffer"])
    if args:
        args[0].numpy()


def flush_to_memory(*args) -> None:
    """:func:`scrub_private_caches`, then TVM's ``clflush`` of every argument but the first.

    The clflush alone leaves what the function itself allocates (a padded copy of its
    input, a packed tile) in the private caches from the run before, where in a model the
    layers between two calls have long pushed it out. MobileNet-V2's first stride-2
    depthwise layer, its input padded in a 5 MB pass of its own, was timed so at 112 and
    140 us (two timings; 116.5 and 153 with the padding done per tile) and ran at about
    210 in the model; scrubbed, then flushed, 127 against 118 (2026-12-07, Zen 4)."""
    scrub_private_caches(*args)
    tvm.get_global_func("cache_flush_cpu_non_first_arg")(*args)


tvm.register_global_func(PREPROC, scrub_private_caches, override=True)
tvm.register_global_func(FLUSH_PREPROC, flush_to_memory, override=True)


def preprocessor(settings) -> str:
    """The ``f_preproc`` of ``time_evaluator`` that times as ``settings`` (a
    :class:`~.settings.MeasureSettings`) say, on this machine's CPU: none (warm),
    :data:`FLUSH_PREPROC` or :data:`PREPROC`."""
    if not settings.enable_cpu_cache_flush:
        return ""
    return PREPROC if settings.flush_to == "llc" else FLUSH_PREPROC


def run_evaluator(rt_mod, device, evaluator_config, repeated_args) -> list[float]:
    """MetaSchedule's ``run_evaluator_common`` with :func:`scrub_private_caches` before each
    run in place of its ``clflush`` (LocalRunner's ``f_run_evaluator``)."""
    return _evaluated(PREPROC, rt_mod, device, evaluator_config, repeated_args)


def run_evaluator_flushed(rt_mod, device, evaluator_config, repeated_args) -> list[float]:
    """The same with :func:`flush_to_memory` before each run."""
    return _evaluated(FLUSH_PREPROC, rt_mod, device, evaluator_config, repeated_args)


def _evaluated(preproc: str, rt_mod, device, evaluator_config, repeated_args) -> list[float]:
    evaluator = rt_mod.time_evaluator(
        func_name=rt_mod.entry_name, dev=device, number=evaluator_config.number,
        repeat=evaluator_config.repeat, min_repeat_ms=evaluator_config.min_repeat_ms,
        f_preproc=preproc)
    costs = []
    for args in repeated_args:
        device.sync()
        costs.append(evaluator(*args).results)
    return [float(cost) for cost in itertools.chain.from_iterable(costs)]
