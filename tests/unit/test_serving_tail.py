"""The serving benchmark says whether its p99 row's slowest requests were one stall of the
machine (answered together) or slow requests spread over the run."""
from benchmarks.serving import Run, _quantiles, slowest_span


def test_a_stall_shows_as_the_slowest_answered_together_and_spread_slowness_as_a_wide_span():
    # 200 requests at 100 req/s, 2 ms each; a 150 ms pause of the machine at 1.0 s holds the
    # 15 then in flight (or planned), which are all answered when it ends.
    stalled = Run(2.0)
    for i in range(200):
        planned = i / 100
        done = 1.15 if 1.0 <= planned < 1.15 else planned + 0.002
        stalled.latencies.append(done - planned)
        stalled.finished.append(done)
    _p50, p99 = _quantiles(stalled.latencies)
    assert p99 > 0.1 and slowest_span(stalled, p99) == 0.0

    spread = Run(2.0)
    for i in range(200):
        planned = i / 100
        latency = 0.05 if i % 50 == 0 else 0.002  # one slow request every half second
        spread.latencies.append(latency)
        spread.finished.append(planned + latency)
    _p50, p99 = _quantiles(spread.latencies)
    assert p99 == 0.05 and slowest_span(spread, p99) > 1.4

    assert slowest_span(Run(1.0), 0.0) == 0.0
