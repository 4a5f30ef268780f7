"""Caches keyed by what clients send stay bounded: the failed-login throttle (a
bounded number of pairs, long names hashed) still throttles what it must;
PROPFIND's empty-element cache keeps no long property names. (The path
statements are covered by tests/dav/test_dav_paths.py.)"""

from __future__ import annotations

from davserver.auth import FailureThrottle
from davserver.dav import propxml


def test_the_throttle_forgets_a_pair_on_success_and_adds_nothing_for_a_question() -> None:
    throttle = FailureThrottle(free=3)
    assert throttle.wait("alice", "10.0.0.1") == 0
    assert len(throttle._pairs) == 0  # asking adds nothing
    for _ in range(4):
        throttle.failed("alice", "10.0.0.1")
    assert throttle.wait("alice", "10.0.0.1") > 0
    assert throttle.wait("alice", "10.0.0.2") == 0 and throttle.wait("bob", "10.0.0.1") == 0
    throttle.succeeded("alice", "10.0.0.1")
    assert len(throttle._pairs) == 0


def test_many_distinct_names_keep_the_throttle_bounded() -> None:
    throttle = FailureThrottle(free=3, size=1000)
    for i in range(20_000):
        throttle.failed(f"attacker-{i}-" + "x" * 1000, "10.0.0.9")
        assert len(throttle._pairs) <= 1000
    assert all(len(name) <= 128 for name, _ in throttle._pairs)  # long names hashed
    for _ in range(4):
        throttle.failed("alice", "10.0.0.1")
    assert throttle.wait("alice", "10.0.0.1") > 0  # the newest failures are kept
    long_name = "y" * 60_000
    for _ in range(4):
        throttle.failed(long_name, "10.0.0.1")
    assert throttle.wait(long_name, "10.0.0.1") > 0


def test_long_property_names_are_not_cached() -> None:
    long_name = "{urn:x}" + "p" * 100_000
    assert propxml.empty_element(long_name).startswith("<ns0:ppp")
    assert propxml.empty_element("{DAV:}getetag") == "<D:getetag/>"
    cached = propxml._empty_element.cache_info()
    for i in range(2000):
        propxml.empty_element(f"{{urn:x}}{i}" + "p" * 300)
    assert propxml._empty_element.cache_info().currsize == cached.currsize
