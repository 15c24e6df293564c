"""Each benchmark starts and prints its figure on tiny sizes (`--quick`). No timing asserts:
benchmarks are not tests; `pytest -m "not bench_smoke"` leaves these out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["throughput", "room_page", "agent_overhead", "fanout", "sockets", "search",
           "concurrency", "usage_overhead"]


@pytest.mark.bench_smoke
@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_script_prints_its_figure(name):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DISCUX_") and k != "DATABASE_URL"}
    engine = ["--engine", "sqlite"] if name in ("throughput", "room_page", "search", "concurrency",
                                                "usage_overhead") \
        else []
    result = subprocess.run([sys.executable, "-m", f"bench.{name}", "--quick", *engine],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"bench {name}:" in result.stdout, result.stdout[-2000:]
