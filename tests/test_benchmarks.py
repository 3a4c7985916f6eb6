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


def test_the_peer_target_compares_with_the_cheapest_peer_that_records_token_usage():
    # ours: 10 us in most calls, one call in ten runs a batch of 200 us -> median 10, mean 29
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
    peer = t["our added CPU <= 1/3 of the cheapest peer's"]
    assert peer["measured"].startswith("0.02 of openllmetry + recording spans's added time")
    assert "the cheapest that records token usage" in peer["measured"] and peer["met"]
    mean_peer = t["all our CPU per call (mean, batches included) <= 1/3 of the cheapest peer's (mean)"]
    assert mean_peer["measured"].startswith("0.06 of openllmetry + recording spans's") and mean_peer["met"]
    share = t["our added CPU <= 3% of the plain SDK call's"]
    assert share["measured"].startswith("+10 us") and share["met"]
    mean_share = t["all our CPU per call (mean, batches included) <= 3% of the plain SDK call's"]
    assert mean_share["measured"].startswith("+29 us of 1000 us = 2.9%") and mean_share["met"]
    peers_table = next(tb for tb in tables if tb["title"].startswith("Against each peer"))
    recorded = {row[1]: row[2] for row in peers_table["rows"]}
    assert recorded == {"openllmetry": "operation.duration",
                        "openllmetry + recording spans": "operation.duration, token.usage"}


def test_targets_are_missed_when_the_batches_make_the_mean_too_high():
    ours = [10.0] * 9 + [400.0]  # median 10 us, mean 49 us = 4.9 % of the call
    res = scenario({"openllmetry": {"gen_ai.client.operation.duration": 30}},
                   {"openllmetry": [rounds(ours, [100.0] * 10)] * 3}, pairs=ours)
    t = by_target(B.summarise([res])[1])
    assert t["our added CPU <= 3% of the plain SDK call's"]["met"]
    assert not t["all our CPU per call (mean, batches included) <= 3% of the plain SDK call's"]["met"]
    # no peer records token usage: the comparison says so, against the cheapest one
    peer = t["our added CPU <= 1/3 of the cheapest peer's"]
    assert "no peer records token usage" in peer["measured"] and peer["met"]
    assert not t["all our CPU per call (mean, batches included) <= 1/3 of the cheapest peer's (mean)"]["met"]
