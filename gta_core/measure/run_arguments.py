"""The arguments a runner worker times a candidate on: random floats, integers all zero.

MetaSchedule's workers fill every argument with random values, integers too. A model's
function may read an integer argument as indices (a gather: token ids into an embedding),
and random ones index outside its table: TVM's ``take`` checks nothing, so the candidate
reads whatever memory lies there or its worker dies (every trial of such a function
crashed). Zero indexes the first entry of any table. Integer arithmetic takes as long on
zeros as on other values, so quantized programs time the same; floats stay random (zeros
could meet fast paths that real data does not). The check itself runs on the workload's
own inputs (indices drawn inside their tables: ``SubgraphWorkload.random_inputs``).
"""

from __future__ import annotations


def alloc_arguments(device, args_info, alloc_repeat: int) -> list:
    """LocalRunner's ``f_alloc_argument``: its own allocation, integers filled with zeros."""
    import numpy as np
    from tvm.s_tir.meta_schedule.runner.utils import alloc_argument_common
    from tvm.s_tir.meta_schedule.utils import get_global_func_with_default_on_worker

    random_fill = get_global_func_with_default_on_worker(
        name="tvm.contrib.random.random_fill_for_measure", default=None)

    def fill(tensor) -> None:
        if str(tensor.dtype).startswith(("int", "uint")):
            tensor.copyfrom(np.zeros(tuple(tensor.shape), str(tensor.dtype)))
        else:
            random_fill(tensor)

    return alloc_argument_common(fill, device, args_info, alloc_repeat)
