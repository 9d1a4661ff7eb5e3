"""`python -m benchmark.perf`: the machine description `bench perf` records, as JSON."""

import json

from benchmark.perf.core import machine

print(json.dumps(machine(), indent=2))
