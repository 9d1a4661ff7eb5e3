import subprocess
import sys
import time

from benchmark.cli import main


def test_ls_lists_registries(capsys):
    assert main(["ls", "models"]) == 0
    out = capsys.readouterr().out.split()
    assert {"wav2lip", "syncnet_expert", "static"} <= set(out)
    assert main(["ls", "metrics"]) == 0
    out = capsys.readouterr().out
    assert "lse_c" in out and "higher" in out and "match_gt" in out


def test_ls_is_fast_and_imports_no_torch():
    t0 = time.perf_counter()
    code = "import sys; from benchmark.cli import main; main(['ls','models']); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert time.perf_counter() - t0 < 20  # generous: the assertion that matters is the torch one


def test_unknown_model_prints_suggestion_without_traceback(capsys):
    assert main(["validate", "--model", "wav2lipp", "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'wav2lip'" in err
    assert "Traceback" not in err


def test_bad_override_is_reported(capsys):
    assert main(["validate", "--model", "static", "--dataset", "synthetic", "trainer.devicez=2"]) == 2
    assert "trainer.devices" in capsys.readouterr().err


def test_validate_builds_model_and_needs(capsys):
    assert main(["validate", "--model", "wav2lip", "--dataset", "synthetic", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "ok: model 'wav2lip' (Wav2LipModule" in out and "SyncNetScores" in out
