"""Hook specifications: the plugin author's reference.

A GTA plugin is a module (or any object) with functions named after the hooks
below and marked with :data:`hookimpl`. Install it with an entry point in the
``gta`` group::

    [project.entry-points.gta]
    my_accelerator = "my_accelerator.plugin"

The ``gta_register_*`` hooks receive a ``register`` callback: call it once per
object. The core validates each object as it is registered and names the
plugin that registered it when something is wrong; a plugin with one bad
object, or whose hook raises, is skipped whole and the others keep working.
The core's own operators, enumerator and defaults use these same hooks.

Every plugin's contribution counts: where one answer must win (a name
registered twice), the first plugin loaded keeps it and the later one is
reported; ``gta_intrinsic_peak`` uses the first measurement returned.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("gta")
hookimpl = pluggy.HookimplMarker("gta")


@hookspec
def gta_register_targets(register):
    """Register hardware targets.

    Called once, when the plugin manager loads, before every other register
    hook, so that the targets exist when intrinsics name them.

    :param register: call ``register(target)`` with a
        :class:`gta_core.models.Target` (or a dict that validates as one) for
        each target this plugin provides. Target names are unique across
        plugins.
    :return: ignored.
    """


@hookspec
def gta_register_intrinsics(register):
    """Register hardware intrinsics, declared as data.

    Called once at load, after :func:`gta_register_targets`. An intrinsic may
    belong to a target of another plugin (an extra intrinsic for ``avx512``);
    it is used only while that target is loaded.

    :param register: call ``register(intrinsic)`` with a
        :class:`gta_core.models.Intrinsic` for each intrinsic: its compute (the
        iteration variables with extents and kinds, the operands with dtypes,
        index expressions and memory scopes) and the names of the TVM tensor
        intrinsics that implement it, plus ``tvm_module``, the module whose
        import registers those with TVM.
    :return: ignored.
    """


@hookspec
def gta_register_workloads(register):
    """Register operators that workload specs can name.

    Called once at load. ``gemm``, ``conv2d`` and the other built-in
    operators come through this hook too.

    :param register: call ``register(operator)`` with an instance of a
        :class:`gta_core.workloads.Operator` subclass: its ``name`` is what
        users type before the colon of a spec, its ``Params`` model the keys.
    :return: ignored.
    """


@hookspec
def gta_register_rules(register):
    """Register generation rules that turn a realised mapping into a search space.

    Called once at load.

    :param register: call ``register(rule)`` with an instance of a
        :class:`gta_core.generation.GenerationRule` subclass, which has a
        ``name``, a docstring, ``applies(context)`` and ``apply(context)``.
    :return: ignored.
    """


@hookspec
def gta_register_constraints(register):
    """Register resource constraints that prune candidates before measurement.

    Called once at load.

    :param register: call ``register(constraint)`` with an instance of a
        :class:`gta_core.pruning.Constraint` subclass, which has a ``name``, a
        docstring, ``applies(target)`` and ``check(context)`` returning the
        reason for rejecting a candidate or ``None``. One that reads nothing of the
        program but its tile loops (``context.tiled_loops()``) sets
        ``reads_tiles_only = True``: the search then asks it of the tile sizes it draws,
        before any program is replayed.
    :return: ignored.
    """


@hookspec
def gta_register_cost_models(register):
    """Register cost models that rank candidates before they are measured.

    Called once at load.

    :param register: call ``register(entry)`` with a
        :class:`gta_core.cost_model.CostModelEntry`: a name, a description and
        a factory that builds a fresh MetaSchedule-compatible cost model
        (e.g. a ``PyCostModel`` subclass) for one tuning run.
    :return: ignored.
    """


@hookspec
def gta_mapping_candidates(workload, intrinsic, target):
    """Propose ways to map ``workload`` onto ``intrinsic``.

    Called once per (workload, intrinsic of a loaded target) when mappings are
    enumerated. The core's enumerator is one implementation; a plugin adds
    candidates it knows and the enumerator does not find.

    :param workload: the :class:`gta_core.workloads.Workload` being mapped.
    :param intrinsic: the :class:`gta_core.models.Intrinsic`.
    :param target: the :class:`gta_core.models.Target` it belongs to.
    :return: a list of :class:`gta_core.models.MappingCandidate` (empty or
        ``None`` for none). Results of all plugins are combined; duplicates
        (same id) are kept once.
    """


@hookspec
def gta_mapping_veto(candidate, workload, intrinsic, target):
    """Say why a mapping candidate must not be used, or nothing.

    Called for every candidate that is still kept after enumeration, with the
    same arguments as :func:`gta_mapping_candidates` plus the candidate.

    :param candidate: the :class:`gta_core.models.MappingCandidate`.
    :return: a one-sentence reason to prune the candidate, or ``None`` to let
        it stand. Any plugin's reason prunes it; the reason is shown to users.
    """


@hookspec
def gta_intrinsic_peak(intrinsic, target):
    """Measure an intrinsic's peak throughput on this machine.

    Called by ``gta peak`` for each intrinsic of the chosen target. The
    measurement should run the intrinsic itself in a register-resident loop on
    all of the target's cores, so that it is the ceiling a generated program
    can approach.

    :param intrinsic: the :class:`gta_core.models.Intrinsic` to measure.
    :param target: the :class:`gta_core.models.Target` it belongs to.
    :return: a :class:`gta_core.models.PeakMeasurement`, or ``None`` when
        this plugin does not measure that intrinsic (or cannot here, e.g. no
        GPU), or a :class:`gta_core.models.PeakSkipped` saying why an intrinsic
        it owns cannot be measured (``gta peak`` shows the reason). The first
        plugin to return a measurement is used.
    """
