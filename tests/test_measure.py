"""The measurement layer: settings, batches where some candidates fail, GTA programs, RPC."""

from __future__ import annotations

import json
import sys

import pytest
from tvm.s_tir import meta_schedule as ms
from tvm.script import tirx as T

from gta_core.api import load_workload
from gta_core.database import RecordStore
from gta_core.mapping import mapping_candidates
from gta_core.mapping.realise import realise
from gta_core.measure import (
    MeasureSettings,
    RPCSettings,
    RPCSpecError,
    RPCUnavailable,
    make_builder,
    make_runner,
    measure_batch,
    measure_program,
    parse_rpc,
)
from gta_core.measure.runners import build_candidate
from gta_core.measure.settings import RPC_FORM
from gta_core.plugins import default_registry


@T.prim_func(s_tir=True)
def add_one(A: T.Buffer((1024,), "float32"), B: T.Buffer((1024,), "float32")):
    for i in range(1024):
        with T.sblock("B"):
            vi = T.axis.spatial(1024, i)
            B[vi] = A[vi] + T.float32(1)


@T.prim_func(s_tir=True)
def bad_vnni(A: T.Buffer((16,), "int32"), B: T.Buffer((16,), "int32"),
             C: T.Buffer((16,), "int32")):
    # TVM's own VNNI operand types, which this LLVM's verifier refuses (shared TVM notes).
    C[T.ramp(0, 1, 16)] = T.call_llvm_pure_intrin(
        "int32x16", "llvm.x86.avx512.vpdpbusd.512", C[T.ramp(0, 1, 16)],
        A[T.ramp(0, 1, 16)], B[T.ramp(0, 1, 16)])


@T.prim_func(s_tir=True)
def calls_missing(A: T.Buffer((4,), "float32")):
    T.evaluate(T.call_packed("gta.test.no_such_function", A.data))


@T.prim_func(s_tir=True)
def aborts(A: T.Buffer((4,), "int32")):
    T.evaluate(T.call_extern("int32", "abort"))


@T.prim_func(s_tir=True)
def spins(A: T.Buffer((4,), "int32")):
    count = T.alloc_buffer((1,), "int32")
    count[0] = 0
    while A[0] == A[0]:
        count[0] = count[0] + 1
    A[1] = count[0]


@pytest.fixture(scope="module")
def avx512():
    return default_registry().target("avx512")


@pytest.fixture(scope="module")
def builder():
    return make_builder(MeasureSettings())


@pytest.fixture(scope="module")
def runner(avx512):
    return make_runner(MeasureSettings(), avx512)


@pytest.fixture(scope="module")
def tensorized():
    """A GTA-realised int8 GEMM on VNNI, and its workload."""
    registry = default_registry()
    workload = load_workload("gemm:M=64,N=64,K=64,dtype=int8")
    candidate = next(c for c in mapping_candidates(workload, "avx512", registry)
                     if c.status == "kept")
    realised = realise(workload, candidate, registry.intrinsics[candidate.intrinsic])
    return realised.sch.mod, workload


# --- settings -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("tracker=127.0.0.1:9190,key=gta", RPCSettings(tracker_host="127.0.0.1", tracker_port=9190,
                                                   key="gta")),
    (" key=rtx , tracker=box.lan:9000 ,session_timeout=30",
     RPCSettings(tracker_host="box.lan", tracker_port=9000, key="rtx", session_timeout_s=30)),
    ("tracker=[::1]:9190,key=k,session_timeout=2.5",
     RPCSettings(tracker_host="::1", tracker_port=9190, key="k", session_timeout_s=2.5)),
])
def test_parse_rpc_reads_the_cli_form(text, expected):
    assert parse_rpc(text) == expected


@pytest.mark.parametrize("text, bad_part", [
    ("", "empty"),
    ("   ", "empty"),
    ("tracker=host:9190", "'key'"),
    ("key=gta", "'tracker'"),
    ("tracker=host:port,key=gta", "'port'"),
    ("tracker=host:70000,key=gta", "'70000'"),
    ("tracker=host,key=gta", "'host'"),
    ("tracker=host:9190,key=gta,colour=red", "'colour'"),
    ("tracker=host:9190,key=", "'key' is empty"),
    ("tracker=host:9190,key=a,key=b", "'key' is given twice"),
    ("tracker=host:9190,gta", "'gta'"),
    ("tracker=host:9190,key=gta,session_timeout=-1", "'-1'"),
    ("tracker=host:9190,key=gta,session_timeout=soon", "'soon'"),
])
def test_parse_rpc_names_the_bad_part_in_one_line(text, bad_part):
    with pytest.raises(RPCSpecError) as caught:
        parse_rpc(text)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message and bad_part in message and RPC_FORM in message


def test_settings_take_the_rpc_cli_form_and_have_generous_build_timeouts():
    settings = MeasureSettings(rpc="tracker=127.0.0.1:9190,key=gta")
    assert settings.rpc == parse_rpc("tracker=127.0.0.1:9190,key=gta")
    assert MeasureSettings().build_timeout_s >= 300 and MeasureSettings().rpc is None
    with pytest.raises(ValueError, match="colour"):
        MeasureSettings(rpc="tracker=h:1,key=k,colour=red")


# --- local measurement ----------------------------------------------------------------------

def test_a_failing_candidate_fails_alone_and_says_why_in_one_line(avx512, builder):
    mods = [add_one, bad_vnni, calls_missing, aborts, spins, add_one]
    runner = make_runner(MeasureSettings(run_timeout_s=3), avx512)
    outcomes = measure_batch(builder, runner, mods, avx512)
    good, build_error, run_error, crash, timeout, good_after = outcomes

    for outcome in (good, good_after):  # the runner recovers after a crash and a timeout
        assert outcome.error is None and outcome.latency_us > 0
        assert len(outcome.run_secs) == MeasureSettings().repeat
    assert build_error.failed_at == "build"
    assert "LLVM module verification failed" in build_error.error
    assert run_error.failed_at == "run" and "gta.test.no_such_function" in run_error.error
    assert crash.failed_at == "run" and "crashed" in crash.error
    assert timeout.failed_at == "run" and timeout.error == "timeout"
    for outcome in outcomes[1:-1]:
        assert outcome.latency_us is None and "\n" not in outcome.error


def test_a_build_past_its_timeout_is_a_timeout(avx512, runner):
    builder = make_builder(MeasureSettings(build_timeout_s=0.001))
    [outcome] = measure_batch(builder, runner, [add_one], avx512)
    assert outcome.failed_at == "build" and outcome.error == "timeout"


@pytest.mark.timing
def test_a_gta_tensorized_program_times_as_measure_program_does(
        avx512, builder, runner, tensorized):
    mod, workload = tensorized
    [outcome] = measure_batch(builder, runner, [mod], avx512)
    assert outcome.error is None, outcome.error
    direct = measure_program(mod, workload, avx512, number=100, repeat=5)
    assert direct.correct
    # Both time the same kernel. Other work on two shared cores only adds time, and more to
    # the runner's longer repeats, so compare best repeats; a unit error would still show.
    best = min(outcome.run_secs) * 1e6
    assert outcome.latency_us >= best
    assert 0.5 < best / direct.latency_us < 2


def test_build_workers_build_gta_programs_without_importing_any_intrinsic_module(
        avx512, tensorized):
    def build_and_list_intrinsic_modules(mod, target, params):
        # Nested, so cloudpickle ships it by value to the worker; runs there.

        built = build_candidate(mod, target, params)
        loaded = [name for name in sys.modules
                  if name.startswith(("tvm.s_tir.tensor_intrin", "gta_avx512", "gta_cuda"))]
        assert not loaded, f"build worker imported {loaded}"
        return built

    builder = ms.builder.LocalBuilder(max_workers=1, timeout_sec=300,
                                      f_build=build_and_list_intrinsic_modules)
    [result] = builder.build([ms.builder.BuilderInput(tensorized[0], avx512.tvm_target())])
    assert result.error_msg is None, result.error_msg


# --- RPC ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rpc(avx512, rpc_farm):
    """A tracker and one server with key gta-test on localhost; the settings that reach
    them and a runner through them."""
    farm = rpc_farm(servers=1, key="gta-test")
    settings = MeasureSettings(rpc=farm.rpc, run_timeout_s=20)
    yield settings, make_runner(settings, avx512)
    farm.stop()


@pytest.mark.runs("avx512")
def test_rpc_runner_measures_a_gta_program_through_a_tracker(rpc, avx512, builder, tensorized):
    mod, _ = tensorized
    outcomes = measure_batch(builder, rpc[1], [mod, calls_missing], avx512)
    assert outcomes[0].error is None, outcomes[0].error
    assert outcomes[0].latency_us > 0
    assert outcomes[1].failed_at == "run" and "gta.test.no_such_function" in outcomes[1].error


def test_rpc_without_a_server_for_the_key_fails_at_once_in_one_line(rpc, avx512):
    rpc_settings = rpc[0]
    wrong_key = rpc_settings.rpc.model_copy(update={"key": "no-such-device"})
    with pytest.raises(RPCUnavailable, match="no server with key 'no-such-device'"):
        make_runner(rpc_settings.model_copy(update={"rpc": wrong_key}), avx512)
    closed = rpc_settings.rpc.model_copy(update={"tracker_port": 1})
    with pytest.raises(RPCUnavailable, match="cannot be reached"):
        make_runner(rpc_settings.model_copy(update={"rpc": closed}), avx512)


@pytest.mark.runs("avx512")
def test_gta_tune_measures_through_the_rpc_tracker_end_to_end(rpc, tmp_path, capsys):
    from gta_core.cli import main

    where = rpc[0].rpc
    code = main(["tune", "gemm:M=32,N=32,K=64,dtype=int8", "--target", "avx512", "--trials",
                 "2", "--db", str(tmp_path), "--json", "--quiet",
                 "--rpc", f"tracker={where.tracker_host}:{where.tracker_port},key={where.key}"])
    [task] = json.loads(capsys.readouterr().out)["tasks"]
    assert code == 0 and task["trials"] == 2 and task["correct"] is True
    assert len(RecordStore(tmp_path).records()) == 2
