"""`gta bench --suite net-*`: a zoo model tuned by GTA and MetaSchedule at one budget, every
contender checked against onnxruntime and timed in its own process."""

from __future__ import annotations

import json

import pytest

from gta_core.bench.networks import NET_SUITES, NetResult, round_ratios, run_network_bench
from gta_core.bench.run import BenchError
from gta_core.bench.zoo import ZOO, build_model
from gta_core.cli import main


def test_every_zoo_model_builds_offline_with_random_weights():
    import torch

    for name in ("tiny", "mobilenetv2"):
        module = build_model(name)
        with torch.no_grad():
            out = module(torch.randn(*ZOO[name].input_shape))
        assert out.shape[0] == 1 and torch.isfinite(out).all()
    assert {"net-resnet18", "net-resnet50", "net-mobilenetv2", "net-bert"} <= set(NET_SUITES)


def test_a_network_suite_tunes_checks_and_times_every_contender(tmp_path):
    report = run_network_bench("net-tiny", tmp_path, trials=2,
                               contenders=["gta", "metaschedule", "tvm-untuned", "onnxruntime",
                                           "torch"], repeat=1, quiet_wait_s=0)
    by_name = {r.contender: r for r in report.results}
    for result in by_name.values():
        assert result.correct is True, result.note
        assert result.latency_ms and result.latency_ms > 0 and len(result.samples_ms) == 1
    assert by_name["gta"].trials == 2 and by_name["metaschedule"].trials == 2
    assert by_name["gta"].tuning_seconds > 0 and by_name["metaschedule"].tuning_seconds > 0
    assert set(report.speedup) == {f"gta/{c}" for c in by_name if c != "gta"}
    assert set(report.per_round) == set(report.speedup)  # one round: its ratio is the medians'
    for key, ratios in report.per_round.items():
        assert ratios.rounds == 1 and ratios.median == pytest.approx(report.speedup[key])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["model"] == "tiny" and saved["host"] and saved["per_round"]
    assert "| gta |" in (tmp_path / "results.md").read_text()
    assert "GTA faster in" in (tmp_path / "results.md").read_text()
    spots = report.hotspots
    assert spots and 0 < sum(h.share for h in spots) <= 1 + 1e-9
    costs = [h.calls * h.us_per_call for h in spots]
    assert costs == sorted(costs, reverse=True)
    assert any(h.peak_gops and 0 < h.gops < h.peak_gops * 1.5 for h in spots)
    # each timed inside the model too: within what a whole call of the model takes
    assert all(0 < h.us_in_model < 1e3 * by_name["gta"].latency_ms for h in spots)
    assert "Where GTA's time goes" in (tmp_path / "results.md").read_text()


def test_per_round_ratios_pair_each_round_and_skip_a_contender_missing_one():
    def result(name, samples):
        return NetResult(contender=name, samples_ms=samples)

    # the medians say 1.33x; round by round the other contender is 2x slower in 3 of 4
    gta = result("gta", [1.0, 2.0, 1.0, 2.0])
    ratios = round_ratios([gta, result("ort", [2.0, 1.0, 2.0, 4.0]),
                           result("torch", [3.0, 3.0, 3.0])], 4)  # failed a round: not paired
    assert set(ratios) == {"gta/ort"}
    got = ratios["gta/ort"]
    assert (got.median, got.low, got.high, got.gta_faster, got.rounds) == (2.0, 0.5, 2.0, 3, 4)
    assert round_ratios([result("ort", [1.0])], 1) == {}  # no GTA, nothing to pair
    assert round_ratios([result("gta", [1.0]), result("ort", [1.0])], 2) == {}  # GTA failed one


def test_an_int8_suite_runs_the_quantized_model_beside_the_float_one(tmp_path, capfd):
    report = run_network_bench("net-tiny-int8", tmp_path, trials=2,
                               contenders=["gta", "onnxruntime", "torch-int8", "gta-fp32",
                                           "onnxruntime-fp32"], repeat=1, quiet_wait_s=0)
    assert "pre-processing" not in capfd.readouterr().err  # quantize_static's advice
    by_name = {r.contender: r for r in report.results}
    for result in by_name.values():
        assert result.correct is True, result.note
        assert result.latency_ms and result.latency_ms > 0
    assert by_name["gta"].trials == 2 and by_name["gta-fp32"].trials == 2
    assert (tmp_path / "model-int8.onnx").is_file() and (tmp_path / "fp32" / "gta").is_dir()
    assert {"gta/onnxruntime", "gta/gta-fp32", "gta/onnxruntime-fp32",
            "gta/torch-int8"} <= set(report.speedup)
    torch_int8 = by_name["torch-int8"]  # PyTorch's own quantization, held to its reference
    assert torch_int8.quantized.within_one_step is None
    assert torch_int8.quantized.relative_rms <= torch_int8.quantized.rms_bound
    assert "checked against the float model" in torch_int8.note
    with pytest.raises(BenchError, match="unknown contender.*torch.*for net-tiny-int8"):
        run_network_bench("net-tiny-int8", tmp_path, trials=1, contenders=["gta", "torch"])


def test_bad_network_suite_requests_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(BenchError, match="unknown contender.*numpy"):
        run_network_bench("net-tiny", tmp_path, trials=1, contenders=["gta", "numpy"])
    assert main(["bench", "--suite", "net-tiny", "--first", "2", "--out", str(tmp_path)]) == 2
    assert "--first and --one-process are for operator suites" in capsys.readouterr().err


def test_baselines_name_each_network_contender_once():
    from gta_core.bench.net_runners import NET_CONTENDERS
    from gta_core.cli_model import net_contenders

    assert net_contenders(None, "net-tiny") == list(NET_CONTENDERS)
    assert net_contenders("gta,onnxruntime,torch,onnxruntime", "net-tiny") == [
        "gta", "onnxruntime", "torch"]
    assert "onnxruntime-fp32" in net_contenders(None, "net-tiny-int8")


def test_metaschedule_rounds_shrink_so_every_task_gets_one():
    from gta_core.bench.net_tuning import trials_per_round

    assert trials_per_round(5000, 19) == 64  # its default where the budget allows
    assert trials_per_round(1000, 19) == 26 and 19 * 26 <= 1000 // 2 + 19
    assert trials_per_round(300, 19) == 8 and trials_per_round(10, 50) == 8


def test_pytorchs_int8_contender_runs_its_quantized_kernels():
    import torch

    from gta_core.bench.zoo import ZOO, build_model, quantize_torch

    module = quantize_torch("tiny")
    convs = [m for m in module.modules() if type(m).__module__.startswith(
        "torch.ao.nn.intrinsic.quantized") or type(m).__module__.startswith(
        "torch.ao.nn.quantized")]
    assert any("Conv" in type(m).__name__ for m in convs)  # int8 convolutions, not float
    x = torch.randn(*ZOO["tiny"].input_shape)
    with torch.no_grad():
        got, want = module(x), build_model("tiny")(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert float((got - want).norm() / want.norm()) < 0.2  # the float model's function
    reference = quantize_torch("tiny", reference=True)  # the same scales, computed in float
    assert not any("Conv" in type(m).__name__ and type(m).__module__.startswith(
        "torch.ao.nn.intrinsic.quantized") for m in reference.modules())
    with torch.no_grad():  # the same scales: within its own quantization error
        assert float((module(x) - reference(x)).norm() / reference(x).norm()) < 0.1
