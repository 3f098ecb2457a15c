"""The server process's malloc setting (`backend.unmap_large_allocations`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Frees an 8 MB array (glibc then raises its mmap threshold to 8 MB), then allocates and frees
# thirty 4 MB arrays with a small live one after each, the way query arrays interleave with
# cached objects, and prints the anonymous memory still held (KiB).
PROBE = """
import sys
import numpy as np
from coderag_assets.backend import unmap_large_allocations
if sys.argv[1] == "fixed":
    assert unmap_large_allocations()
def anonymous():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
big = np.ones(1 << 20)
del big
start = anonymous()
kept = []
for _ in range(30):
    scores = np.ones(1 << 19)
    kept.append(np.ones(64))
    del scores
print(anonymous() - start)
"""


def held_kib(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_large_arrays_go_back_to_the_system() -> None:
    assert held_kib("fixed") < 2048  # each 4 MB array was its own mapping, unmapped when freed
    assert held_kib("default") > 2048  # the heap kept (most of) one of them
