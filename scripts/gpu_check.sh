#!/usr/bin/env bash
# The GPU checks of the researcher's path, on one CUDA machine, in under 8 minutes on one H100:
#   1. scripts/gpu_devices.py: every network on the run's device after training and after loading (asserted),
#      evaluators too; what bf16 autocast changes in generated pixels and metrics;
#   2. the rehearsal tier (every model's paper preset: prepare, train, kill, resume, generate, score) on CUDA;
#   3. bench perf --only models metrics on the GPU (generation batched vs one clip at a time among them).
# Reports go to $OUT (the device tool's output folder) or reports/gpu_check/. Wheels the machine lacks come
# from .whl/ (scripts/gpu_wheels.sh, run beforehand where PyPI is reachable; carry .whl with the device tool).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-reports/gpu_check}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TALKBENCH_HOME=${TALKBENCH_HOME:-/tmp/talkbench_home}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PYTHONPATH || exit 1
fi
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" \
  || exit 1
status=0
step() {  # name, command...: run, time, keep going; the summary says what failed
  local name=$1; shift
  local t0=$SECONDS
  "$@" > "$out/$name.log" 2>&1 || { status=1; echo "FAILED $name (see $out/$name.log)"; tail -20 "$out/$name.log"; }
  echo "$name: $((SECONDS - t0)) s"
}
step devices python3 scripts/gpu_devices.py --device cuda --out "$out/devices.json"
step rehearsal python3 -m pytest -q -m rehearsal tests/rehearsal -p no:cacheprovider
step perf python3 -m benchmark.cli perf --only models metrics --out "$out/perf.json"
tail -40 "$out/perf.log"
exit $status
