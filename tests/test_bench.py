"""The benchmark runs every mode and its counted FLOPs say what the cache saves."""

import json

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


def test_cpu_attention_is_counted() -> None:
    import torch

    q, k = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 30, 8)
    with count_flops() as c:
        torch.nn.functional.scaled_dot_product_attention(q, k, k)
    assert c.get_total_flops() == 4 * 2 * 10 * 30 * 8
