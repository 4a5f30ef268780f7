"""Caches keyed by what clients send stay bounded: the failed-login throttle (it
remembered every name ever tried, and an empty entry for each login) still throttles
what it must; PROPFIND's empty-element cache keeps no long property names. (The
path statements are covered by tests/test_dav_paths.py.)"""

from __future__ import annotations

from davserver import propxml
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


def test_long_property_names_are_not_cached() -> None:
    long_name = "{urn:x}" + "p" * 100_000
    assert propxml.empty_element(long_name).startswith("<ns0:ppp")
    assert propxml.empty_element("{DAV:}getetag") == "<D:getetag/>"
    cached = propxml._empty_element.cache_info()
    for i in range(2000):
        propxml.empty_element(f"{{urn:x}}{i}" + "p" * 300)
    assert propxml._empty_element.cache_info().currsize == cached.currsize
