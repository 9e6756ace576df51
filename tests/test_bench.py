"""The benchmark runs every mode and its counted FLOPs say what the cache saves."""

import json

import pytest

from lmdm import ModelConfig
from lmdm.bench import MODES, count_flops, main, run


def test_bench_counts_flops_for_every_mode(capsys) -> None:
    report = run(ModelConfig.tiny(), blocks=1, warmup=0, steps=4)
    results = {r["mode"]: r for r in report["results"]}
    assert set(results) == {m[0] for m in MODES}
    naive = results["naive"]
    assert naive["flop_ratio_vs_naive"] == 1.0
    # the cache does less work than naive; the uncached references do at least as much
    assert results["encdec"]["flop_ratio_vs_naive"] > 2.0
    assert results["block_causal"]["flop_ratio_vs_naive"] > results["encdec"]["flop_ratio_vs_naive"]
    assert results["block_causal_nocache"]["gflops"] > naive["gflops"]
    assert results["encdec"]["cache_bytes"] > 0 and naive["cache_bytes"] == 0
    json.dumps(report)  # --json works
    assert main(["--config", "tiny", "--blocks", "1", "--warmup", "0", "--modes", "naive", "encdec"]) == 0
    out = capsys.readouterr().out
    assert "naive" in out and "encdec" in out and "GFLOP" in out


def test_plain_bench_is_the_bundled_model_and_noisy_timings_are_said(monkeypatch, capsys) -> None:
    import lmdm.bench as bench

    seen = {}
    monkeypatch.setattr(bench, "run", lambda config, model=None, **kw: seen.update(config=config, model=model) or run(ModelConfig.tiny(), blocks=1, warmup=0, steps=1, modes=["naive"]))
    assert main([]) == 0
    assert seen["config"] is None and seen["model"].name == "lmdm-default"
    report = run(ModelConfig.tiny(), blocks=3, warmup=0, steps=1, modes=["naive", "block_causal"])
    assert bench.noisy(report) == [] or "noisy" in bench.noisy(report)[0]
    r = dict(report["results"][0], block_ms=10.0, block_ms_min=9.0, block_ms_max=20.0)
    warned = bench.noisy(dict(report, results=[r]))
    assert len(warned) == 1 and "spread 110% of the median in naive" in warned[0]
    fast = dict(report["results"][1], block_ms=10.0, block_ms_min=10.0, block_ms_max=10.0, efficiency=26.66)
    assert "efficiency over 100 % in block_causal" in bench.noisy(dict(report, results=[fast]))[0]
    # more FLOPs than naive (uncached block_causal over the long history): larger matmuls, faster per FLOP
    big = dict(fast, mode="block_causal_nocache", efficiency=1.11, flop_ratio_vs_naive=0.12)
    assert bench.noisy(dict(report, results=[big])) == []


def test_cpu_attention_is_counted() -> None:
    import torch

    q, k = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 30, 8)
    with count_flops() as c:
        torch.nn.functional.scaled_dot_product_attention(q, k, k)
    assert c.get_total_flops() == 4 * 2 * 10 * 30 * 8


def test_linear_flops_are_counted_on_either_kernel() -> None:
    import torch

    from lmdm.model import linear

    x, w = torch.randn(2, 7, 16), torch.randn(24, 16)
    before = linear.kernel()
    try:
        for kernel in linear.KERNELS:
            linear.set_kernel(kernel)
            with count_flops() as c, torch.no_grad():
                linear.linear(x, w)
            assert c.get_total_flops() == 2 * 14 * 16 * 24, kernel
    finally:
        linear.set_kernel(before)


def test_cfg_doubles_the_work_and_the_ceiling_is_measured(capsys) -> None:
    one = run(ModelConfig.tiny(), modes=["naive", "block_causal"], blocks=1, warmup=0, steps=2)
    two = run(ModelConfig.tiny(), modes=["naive", "block_causal"], blocks=1, warmup=0, steps=2, cfg=3.0, ceiling=True)
    for a, b in zip(one["results"], two["results"]):
        assert 1.9 < b["gflops"] / a["gflops"] < 2.1  # a batch of two sequences (conditional, unconditional)
    c = two["matmul_ceiling"]
    config = ModelConfig.tiny()
    assert c["cached_rows"] == 2 * (config.block_frames + 1) and c["naive_rows"] == 2 * (config.context_frames + config.block_frames + 1)
    assert c["cached_gflops"] > 0 and c["naive_gflops"] > 0 and c["ceiling"] == c["cached_gflops"] / c["naive_gflops"]
    assert one["matmul_ceiling"] is None
    from lmdm.model import linear

    before = linear.kernel()
    try:
        assert main(["--config", "tiny", "--blocks", "1", "--warmup", "0", "--modes", "naive", "--cfg", "2", "--ceiling", "--linear", "aten"]) == 0
    finally:
        linear.set_kernel(before)  # --linear sets the kernel for the whole process
    out = capsys.readouterr().out
    assert "CFG 2" in out and "linear kernel aten" in out and "matmul ceiling" in out


def test_load_starts_cpu_hogs_and_always_stops_them(capsys) -> None:
    from lmdm.bench import cpu_load

    with pytest.raises(KeyboardInterrupt), cpu_load(2) as hogs:
        assert len(hogs) == 2 and all(h.poll() is None for h in hogs)
        raise KeyboardInterrupt  # Ctrl-C in the middle of a bench
    assert all(h.poll() is not None for h in hogs)
    assert main(["--config", "tiny", "--blocks", "1", "--warmup", "0", "--steps", "1", "--modes", "block_causal", "--load", "1"]) == 0
    out = capsys.readouterr().out
    assert "1 threads" in out and "under load: 1 CPU-bound process" in out


def test_bench_options_are_checked(tmp_path, capsys) -> None:
    for argv in (["--load", "-1"], ["--play", str(tmp_path / "none.lmdm")], ["--threads", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2, argv
    assert "--load must be" in capsys.readouterr().err


@pytest.mark.audio
def test_play_bench_reports_real_time_factor_and_dropouts(jack_server, tmp_path, capsys) -> None:
    from lmdm.bench import format_play, play_set
    from lmdm.model.lmdm import build_model

    model = build_model(ModelConfig.tiny(), seed=0)
    if model.sample_rate != jack_server.rate:
        pytest.skip(f"JACK runs at {jack_server.rate} Hz, the tiny model at {model.sample_rate} Hz")
    set_file = tmp_path / "set.lmdm"
    set_file.write_text("tempo 120\nprompt \"techno\"\n")
    report = play_set(model, set_file, 1.0, threads=1)
    assert report["blocks"] >= 3 and 0 < report["real_time_factor"] < 1 and report["set_errors"] == []
    assert report["device_losses"] == 0
    line = format_play(report, 1)
    assert "with 1 CPU-bound process running" in line and "underruns" in line and "output underflows" in line
