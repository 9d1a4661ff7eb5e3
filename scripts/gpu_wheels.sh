#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the wheels scripts/gpu_check.sh needs on the GPU machine, whose image
# (Python 3.12, torch, lightning, torchmetrics, numpy, scipy, opencv, scikit-image, rich, pandas) lacks these.
# They land in .whl/ (git-ignored) and travel with the device tool's `carry: [".whl"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
# omegaconf: configs; librosa and what it imports (audioread, decorator, pooch, platformdirs, soundfile, cffi,
# pycparser, soxr): Wav2Lip's mel; imageio-ffmpeg: the ffmpeg binary every video read and write goes through
# (0.6.0: its wheel is 29 MB, 0.8.1's 68 MB would not fit the 64 MiB a device call carries)
for pkg in omegaconf==2.4.0 librosa==0.11.0 audioread==3.1.0 decorator==5.3.2 pooch==1.9.0 platformdirs==4.14.9 \
  soundfile==0.14.0 cffi pycparser soxr==1.1.0 imageio-ffmpeg==0.6.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" --platform any -d .whl "$pkg"
done
du -sh .whl
