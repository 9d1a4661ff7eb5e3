"""Calibration: evaluator networks trained on a corpus where no published evaluator applies (`bench calibrate`).

- `sync`: the small evaluation SyncNet (block InfoNCE over in-clip shifts; docs/sync_calibration.md);
- `lipreader`: a small word lipreader on the corpus's own timed words;
- `landmarks`: the 68-point landmark regressor on the corpus's truth landmarks;
- `capp`: the CAPP-style audio/head-pose model on the corpus's head poses.

The networks themselves and their loaders live in `metrics.backbones`; benchmark.calibrate registers what these
modules train (weights named `<network>-<corpus>-<sha8>`), and the metrics find them there. Which corpus uses a
calibrated evaluator is a setting of that corpus's dataset config (configs/datasets/synthetic.yaml `metrics:`).
"""
