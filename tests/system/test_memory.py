"""A large upload streams: memory stays bounded by a few chunks, whatever the file size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import ROOT

_UPLOAD = textwrap.dedent("""
    import json, random, resource, sys
    from core import Drive, load_settings

    class Generated:
        def __init__(self, size):
            self.left, self.rng = size, random.Random(5)
        def read(self, n):
            n = min(n, self.left)
            self.left -= n
            return self.rng.randbytes(n)

    size = int(sys.argv[1])
    with Drive.open(load_settings(data_dir=sys.argv[2])) as drive:
        user = drive.add_user("big", "big-password")
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        info = drive.write(user.id, "/big.bin", Generated(size), expected_size=size)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"size": info.size, "baseline_kib": baseline, "peak_kib": peak}))
""")


def test_streaming_upload_of_768_mib_stays_under_a_few_chunks_of_memory(tmp_path: Path) -> None:
    size = 768 * 1024 * 1024
    result = subprocess.run(
        [sys.executable, "-c", _UPLOAD, str(size), str(tmp_path / "data")],
        capture_output=True, text=True, check=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["size"] == size
    grown_mib = (report["peak_kib"] - report["baseline_kib"]) / 1024
    # 8-chunk batches of at most 4 MiB, plus their encoded copies and pyfastcdc's buffer.
    assert grown_mib < 120, report
