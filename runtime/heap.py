"""Garbage-collector settings for the long-running processes (server, mount).

CPython's cyclic collector walks every tracked object of its oldest
generation now and then. In the server those are nearly all made at start
(functions, types, module and class dicts), and a full pass is charged to
whichever request is allocating at the time: a manifest commit of a 1 GiB
file makes thousands of small objects, so it was often the one, and answered
several times later than its own work (figures: bench/README.md).

``settle_heap`` moves what exists once the process is set up into the permanent
generation (``gc.freeze``: never walked again), so a pass only sees what came
after, and makes young-generation passes rarer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations (less frees) between young-generation passes (CPython's default: 700)."""


def settle_heap() -> None:
    """Call once, when the process is set up and about to serve."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
