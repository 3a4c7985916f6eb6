"""What the benchmark report publishes: which peer a target compares with, and each target's status.

The timings themselves are the benchmarks' business (``benchmarks/run``); these tests feed the report
known per-call differences and check the rows it derives from them.
"""

from __future__ import annotations

from benchmarks import bench_instrument as B
from benchmarks import harness as H

PLAIN_US = 1000.0


def comparison() -> H.Comparison:
    blocks = {"plain": H.Series([PLAIN_US] * 3), "ours": H.Series([PLAIN_US + 20] * 3),
              "openllmetry": H.Series([PLAIN_US + 60] * 3)}
    return H.Comparison("us/call", blocks, H.Comparison("us/call (CPU)", blocks))


def rounds(ours: list[float], peer: list[float]) -> dict[str, H.Paired]:
    plain = [PLAIN_US] * len(ours)
    return {"ours": H.Paired("us", ours, plain), "peer": H.Paired("us", peer, plain)}


def scenario(recorded: dict[str, dict[str, float]], peers: dict[str, list[dict[str, H.Paired]]],
             pairs: list[float]) -> dict:
    return {"provider": "anthropic", "stream": False, "recorded": recorded, "_comp": comparison(),
            "_pairs": [H.Paired("us", pairs, [PLAIN_US] * len(pairs))] * 3, "_peers": peers}


def by_target(targets: list[dict]) -> dict[str, dict]:
    return {t["target"].split(": ", 1)[1]: t for t in targets}


CEILING = "all our CPU per call (mean) <= 0.5x the cheapest peer's that records token usage"


def test_the_ceiling_compares_all_our_cpu_with_the_cheapest_peer_that_records_token_usage():
    # ours: 10 us in most calls, 200 us in one of ten -> mean 29 us: the mean is what counts
    ours = [10.0] * 9 + [200.0]
    duration_only = rounds(ours, [25.0] * 10)  # cheap: it records the duration only
    with_spans = rounds(ours, [500.0] * 10)
    res = scenario({"openllmetry": {"gen_ai.client.operation.duration": 30},
                    "openllmetry + recording spans": {"gen_ai.client.operation.duration": 30,
                                                      B.TOKEN_METRIC: 60}},
                   {"openllmetry": [duration_only] * 3, "openllmetry + recording spans": [with_spans] * 3},
                   pairs=ours)
    tables, targets = B.summarise([res])
    t = by_target(targets)
    assert list(t) == [CEILING]
    assert t[CEILING]["measured"].startswith("0.06 of openllmetry + recording spans's, means of the same rounds "
                                             "(+29 vs +500 us)")
    assert t[CEILING]["met"]
    peers_table = next(tb for tb in tables if tb["title"].startswith("Against each peer"))
    recorded = {row[1]: row[2] for row in peers_table["rows"]}
    assert recorded == {"openllmetry": "operation.duration",
                        "openllmetry + recording spans": "operation.duration, token.usage"}


def test_the_ceiling_is_missed_when_our_mean_is_over_half_the_peers():
    ours = [10.0] * 9 + [400.0]  # median 10 us, mean 49 us
    res = scenario({"openllmetry": {"gen_ai.client.operation.duration": 30}},
                   {"openllmetry": [rounds(ours, [90.0] * 10)] * 3}, pairs=ours)
    t = by_target(B.summarise([res])[1])
    # no peer records token usage: the comparison says so, against the cheapest one
    assert "no peer records token usage" in t[CEILING]["measured"]
    assert t[CEILING]["measured"].startswith("0.54 of openllmetry's")
    assert not t[CEILING]["met"]
