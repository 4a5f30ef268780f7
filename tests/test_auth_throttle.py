"""The failed-login throttle stays bounded whatever names and addresses clients send
(it remembered every name ever tried, and an empty entry for each login), and still
throttles what it must."""

from __future__ import annotations

from davserver.auth import FailureThrottle


def test_the_throttle_forgets_keys_whose_failures_are_past_the_window() -> None:
    throttle = FailureThrottle(limit=3, window=60.0)
    assert not throttle.blocked("ip:10.0.0.1", "user:alice")
    assert throttle.tracked() == 0  # asking adds nothing
    for _ in range(3):
        throttle.failed("ip:10.0.0.1", "user:alice")
    assert throttle.blocked("user:alice") and throttle.blocked("ip:10.0.0.1")
    assert not throttle.blocked("user:bob")
    throttle.window = 0.0  # every failure so far is now out of the window
    assert not throttle.blocked("user:alice", "ip:10.0.0.1")
    assert throttle.tracked() == 0


def test_many_distinct_names_keep_the_throttle_bounded() -> None:
    throttle = FailureThrottle(limit=3, window=60.0, max_keys=1000)
    for i in range(20_000):
        throttle.failed(f"user:attacker-{i}-" + "x" * 1000)
        assert throttle.tracked() <= 1000
    for _ in range(3):
        throttle.failed("user:alice")
    assert throttle.blocked("user:alice")  # the newest failures are kept
    long_name = "user:" + "y" * 60_000
    for _ in range(3):
        throttle.failed(long_name)
    assert throttle.blocked(long_name)
