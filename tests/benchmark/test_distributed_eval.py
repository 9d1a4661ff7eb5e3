"""Distributed evaluation: 2 processes (torchrun, gloo) give exactly the 1-process numbers on an odd clip count."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_runner import small_overrides

from benchmark.distributed import EvalGroup
from benchmark.results import find_results, load_results

REPO = Path(__file__).resolve().parents[2]


def test_shards_cover_every_clip_exactly_once():
    for world in (1, 2, 3):
        owners = [[r for r in range(world) if EvalGroup(r, world).mine(i)] for i in range(7)]
        assert all(len(o) == 1 for o in owners)


def _gt(runs: Path):
    (found,) = [(p, r) for p, r in find_results(runs) if r.run.kind == "gt"]
    return found


def test_two_processes_equal_one_on_seven_clips(tmp_path):
    runs = tmp_path / "runs"
    names = "[ofm,fmse,av_offset,av_conf,lse_d]"
    overrides = small_overrides(runs, expert=False, **{"run.limit": 7, "metrics.names": names})
    args = ["-m", "benchmark.cli", "run", "--model", "static", "--dataset", "synthetic", *overrides]
    # one thread per process in both runs: float reductions in convolutions depend on the thread count
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def bench(*cmd: str) -> None:
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    bench(sys.executable, *args, "run.name=one")  # writes the corpus, calibrates, scores GT and `one` alone
    gt_path, gt_one = _gt(runs)
    shutil.move(gt_path.parent, tmp_path / "gt_one")  # so the 2-process run scores the GT row itself
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    bench(*torchrun, *args, "run.name=two")

    one = load_results(runs / "synthetic" / "one" / "results.json")
    two = load_results(runs / "synthetic" / "two" / "results.json")
    _, gt_two = _gt(runs)
    assert two.protocol.hash == one.protocol.hash == gt_two.protocol.hash == gt_one.protocol.hash
    for a, b in ((one, two), (gt_one, gt_two)):
        assert a.metrics.keys() == b.metrics.keys() and len(a.metrics) == 5
        for name, m in a.metrics.items():
            assert b.metrics[name].value == m.value, name  # to the last digit
            assert b.metrics[name].n == m.n == 7, name
    rows = [line for line in (runs / "synthetic" / "two" / "samples.jsonl").read_text().splitlines() if line]
    assert len(rows) == 7  # exactly once per clip
    assert not list((runs / "synthetic" / "two").glob("*.rank*.jsonl"))
