"""Failures of the machine, not of the input: a full disk and a killed parent leave a clear message and no debris
or orphaned worker behind."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from data.synthetic.generator import SyntheticConfig

ROOT = Path(__file__).resolve().parents[2]
SMALL = SyntheticConfig(seed=2, n_speakers=4, n_clips=6, size=96, max_seconds=1.2)


def _full_disk_ffmpeg(tmp_path: Path) -> str:
    """An ffmpeg that fails the way the real one does when the disk fills while it writes."""
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho '[out#0/mp4 @ 0x1] Error closing file: No space left on device' >&2\nexit 1\n")
    fake.chmod(0o755)
    return str(fake)


def test_a_full_disk_in_the_writer_pool_names_the_file(tmp_path, monkeypatch):
    """The worker's error reaches the user (not "a process in the process pool was terminated abruptly") and the
    half-written corpus is removed, so the retry does not find the folder 'not empty'."""
    from data.io import MediaError
    from data.synthetic.writer import write_corpus

    monkeypatch.setenv("TALKBENCH_FFMPEG", _full_disk_ffmpeg(tmp_path))  # read by the spawned workers
    out = tmp_path / "corpus"
    with pytest.raises(MediaError, match=r"\.flv: ffmpeg failed: .*No space left on device"):
        write_corpus(SMALL, out, "crema", workers=2, progress=False)
    assert not out.exists()


def test_a_full_disk_writing_the_weights_store_leaves_no_temp(tmp_path, monkeypatch):
    from metrics import weights as store

    monkeypatch.setenv("TALKBENCH_HOME", str(tmp_path / "home"))

    def full(obj, f, *a, **k):
        f.write(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match="No space left"):
        store.register_object({"w": torch.zeros(2)}, "net-{content8}", "net", "calibrated", calibrated=True)
    assert list(store.weights_dir().iterdir()) == []


def test_a_full_disk_writing_the_decode_cache_leaves_no_temp(tmp_path, monkeypatch):
    from data.clip import Clip
    from data.corpus import ClipStore

    clip = Clip(video=np.zeros((3, 8, 8, 3), np.uint8), audio=np.zeros(1920, np.float32), clip_id="s/c")
    real_save = np.save
    calls = []

    def full(path, arr, *a, **k):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, arr, *a, **k)

    monkeypatch.setattr(np, "save", full)
    d = tmp_path / "cache" / "s__c"
    with pytest.raises(OSError, match="No space left"):
        ClipStore._put(d, clip, {"size": 1})
    assert not d.exists() and list((tmp_path / "cache").iterdir()) == []


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc")
def test_killing_prepare_leaves_no_orphaned_workers(tmp_path):
    from data.synthetic.writer import write_corpus

    root = tmp_path / "crema"
    write_corpus(SyntheticConfig(seed=2, n_speakers=4, n_clips=40, size=96), root, "crema", 1, False)
    args = [sys.executable, "-m", "benchmark.cli", "data", "prepare", "--dataset", "crema", "--root", str(root)]
    args += ["--out", str(tmp_path / "prepared"), "--workers", "2", "dataset.prepare.landmarks=truth"]
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2 and proc.poll() is None:
            workers = [k for k in _children(proc.pid) if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text()]
            time.sleep(0.2)
        assert len(workers) == 2, "the pool did not start"
        time.sleep(1.0)  # the workers are at work
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        left = [w for w in workers if _alive(w)]
    finally:
        proc.kill()
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "workers outlived the killed prepare"
