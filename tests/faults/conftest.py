"""The fault suite reuses the end-to-end tests' small settings (tests/benchmark/test_runner.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmark"))
