"""What the benchmark scripts share: inputs, the server's environment, starting
``drivegate serve`` (the tests' launcher, ``tests/support/serve.py``), stopping
processes, reading py-spy's folded stacks, and the report (one table per metric,
with drivegate's ratios to the anchors)."""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024**2

# The scripts run as ``python bench/x.py``: the checkout goes on the path for
# the launcher they share with the tests.
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

# Re-exported for the scripts (``as``: mypy's explicit re-export).
from tests.support.serve import serving as serving  # noqa: E402, PLC0414
from tests.support.serve import start_serve as start_serve  # noqa: E402, PLC0414


def generate_random(path: Path, size: int, seed: int) -> None:
    """``size`` incompressible bytes, written once (kept while the size matches)."""
    if path.exists() and path.stat().st_size == size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    partial = path.with_suffix(".part")
    with open(partial, "wb") as out:
        left = size
        while left:
            block = min(left, 8 * MiB)
            out.write(rng.randbytes(block))
            left -= block
    partial.rename(path)


def drivegate_env() -> dict[str, str]:
    """The environment ``drivegate`` runs in: this checkout first on the path."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process we started (its own process group), then kill it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def frame_function(frame: str) -> str:
    """A py-spy frame ``name (path:line)`` as ``name (path)``."""
    return re.sub(r":\d+\)$", ")", frame)


def summarize_profile(
    folded: Path,
    *,
    ours: tuple[str, ...],
    top: int,
    what: str,
    keep: Callable[[list[str]], bool] = lambda frames: True,
) -> None:
    """Print the functions with the most samples in py-spy's folded stacks: on top
    of the stack (with their busiest line), and anywhere in it (only functions in
    the ``ours`` folders). ``keep`` picks the stacks that count; ``what`` names
    the samples in the header line."""
    if not folded.exists():
        print(f"  (no profile written to {folded})")
        return
    own: Counter[str] = Counter()
    own_lines: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f.replace(str(ROOT) + "/", "") for f in stack.split(";")]
        if not keep(frames):
            continue
        total += count
        own[frame_function(frames[-1])] += count
        own_lines[frames[-1]] += count
        for function in {frame_function(f) for f in frames}:
            anywhere[function] += count
    print(f"  {folded.name}: {total} {what}")
    if not total:
        return
    print("  top by own time (busiest line):")
    for function, count in own.most_common(top):
        line = max(
            (f for f in own_lines if frame_function(f) == function), key=own_lines.__getitem__
        )
        print(f"    {100 * count / total:5.1f}%  {line}")
    print("  top by inclusive time, drivegate code:")
    mine = [(f, c) for f, c in anywhere.most_common() if any(o in f for o in ours)]
    for function, count in mine[:top]:
        print(f"    {100 * count / total:5.1f}%  {function}")


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    target: float | None = None  # drivegate / ``anchor`` must reach this ratio
    limit: float | None = None  # drivegate's own figure must stay below this
    digits: int = 0
    ratios: bool = True
    anchor: str = "rclone"  # whom ``target`` is measured against


def report(
    metrics: list[Metric],
    results: dict[str, dict[str, float]],
    names: Sequence[str],
    anchors: Collection[str],
    issue_figures: dict[tuple[str, str], str] | None = None,
) -> None:
    """One table per metric: each of ``names``' figures and drivegate's ratio to each of
    ``anchors``, with the target when there is one. ``MB`` figures are stored in bytes."""
    for metric in metrics:
        if not any(metric.key in figures for figures in results.values()):
            continue
        better = "higher" if metric.higher_is_better else "lower"
        print(f"\n{metric.title} ({metric.unit}, {better} is better)")
        mine = results.get("drivegate", {}).get(metric.key)
        for name in names:
            value = results.get(name, {}).get(metric.key)
            if value is None:
                continue
            shown = value / 1e6 if metric.unit == "MB" else value
            line = f"  {name:<10} {shown:>10.{metric.digits}f}"
            issue = (issue_figures or {}).get((metric.key, name))
            line += f"   (issue: {issue})" if issue else ""
            if name == "drivegate" and metric.limit is not None:
                ok = value < metric.limit
                line = f"{line:<50} target < {metric.limit} {metric.unit}: "
                line += "met" if ok else "MISSED"
            if metric.ratios and name in anchors and mine is not None and value > 0:
                ratio = mine / value
                line = f"{line:<50} drivegate/{name} = {format_ratio(ratio)}x"
                if metric.target is not None and name == metric.anchor:
                    goal = metric.target
                    ok = ratio >= goal if metric.higher_is_better else ratio <= goal
                    sign = ">=" if metric.higher_is_better else "<="
                    line += f"  target {sign} {goal:g}x: {'met' if ok else 'MISSED'}"
            print(line)


def format_ratio(ratio: float) -> str:
    """Two decimals, or three significant digits for the small ratios of a 1/100 target."""
    return f"{ratio:6.2f}" if ratio >= 0.1 else f"{ratio:6.3g}"
