"""Process-pool workers for corpus writing and preparation.

A pool worker blocks on its task queue, whose pipe it holds both ends of, so when the parent is killed outright
(kill -9, an OOM kill, a preempted job) the worker never sees the end of the queue and lives on as an orphan,
holding a core and its ffmpeg children. Each worker therefore watches its parent and exits when it is gone.
"""

from __future__ import annotations

import os
import sys
import threading
import time

PARENT_POLL_S = 1.0


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)  # no cleanup handlers: the parent's own next start sweeps the temporary files


def init_pool_worker() -> None:
    """Pool `initializer`: one thread per worker (the pool is the parallelism) and the parent watch."""
    import cv2

    cv2.setNumThreads(1)
    os.environ["OMP_NUM_THREADS"] = "1"  # read by torch when a task first imports it
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    threading.Thread(target=_exit_when_orphaned, args=(os.getppid(),), daemon=True, name="parent-watch").start()
