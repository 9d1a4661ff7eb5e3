"""Metric stress cards: the perturbations keep the clip contract and do what they say, the card's arithmetic, and
`bench stress` end to end (resume per clip, rescoring a changed perturbation, the link from the HTML report)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_runner import small_overrides

from benchmark.cli import main
from benchmark.results import Results, find_results, read_jsonl, write_jsonl_atomic
from benchmark.stress import load_stress_config
from benchmark.stress_card import PassSummary, build_card, card_path, detection, spread_of, to_markdown
from data import perturbations as perturbations_module
from data.clip import SAMPLES_PER_FRAME, Clip
from data.perturbations import PERTURBATIONS, perturb

T, H, W = 14, 40, 48


@pytest.fixture(scope="module")
def clip() -> Clip:
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:H, :W]
    frames = [
        np.clip(120 + 60 * np.sin(xx / 4 + t / 2) + 30 * np.cos(yy / 3) + rng.normal(0, 12, (H, W)), 0, 255)
        for t in range(T)
    ]
    video = np.stack([np.stack([f, 0.8 * f, 0.6 * f], -1) for f in frames]).astype(np.uint8)
    n = T * SAMPLES_PER_FRAME
    audio = (0.3 * np.sin(2 * np.pi * 180 * np.arange(n) / 16_000) * (1 + np.sin(np.arange(n) / 700))).astype(
        np.float32
    )
    landmarks = rng.uniform(8, 36, (T, 68, 2)).astype(np.float32)
    return Clip("spk/clip_0", video, audio, speaker_id="spk", landmarks=landmarks)


def _settings(name: str) -> dict:
    config = load_stress_config()
    return {"seed": config["seed"], **config["perturbations"][name]}


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_every_configured_perturbation_keeps_the_clip_contract(clip):
    config = load_stress_config()
    kinds = {entry["kind"] for entry in config["perturbations"].values()}
    assert kinds == set(PERTURBATIONS)  # every registered kind is on the card
    for name, entry in config["perturbations"].items():
        made = perturb(clip, {"seed": 0, **entry})
        out = made.clip
        assert out.video.shape == clip.video.shape and out.video.dtype == np.uint8, name
        assert out.audio.shape == clip.audio.shape and out.audio.dtype == np.float32, name
        assert out.landmarks is not None and out.landmarks.shape == clip.landmarks.shape, name
        stream = PERTURBATIONS[entry["kind"]].stream
        touched, kept = ("audio", "video") if stream == "audio" else ("video", "audio")
        assert np.array_equal(getattr(out, kept), getattr(clip, kept)), f"{name} changed the {kept}"
        # 25 -> 24 -> 25 fps by frame selection repeats one frame in 25: a 14-frame clip may come back whole
        if not (entry["kind"] == "fps" and entry.get("method") == "select"):
            assert not np.array_equal(getattr(out, touched), getattr(clip, touched)), f"{name} changed nothing"


def test_video_codecs_change_pixels_more_at_lower_quality(clip):
    errors = {n: _diff(perturb(clip, _settings(n)).clip.video, clip.video) for n in ("h264_crf18", "h264_crf35")}
    assert 0 < errors["h264_crf18"] < errors["h264_crf35"]
    for name in ("h265_crf28", "mpeg4_q5", "fps_25_30_25", "jitter_4px", "zoom_10pct", "noise_sigma8"):
        assert _diff(perturb(clip, _settings(name)).clip.video, clip.video) > 0.5, name
    frozen = perturb(clip, _settings("frozen")).clip.video
    assert all(np.array_equal(f, clip.video[0]) for f in frozen)


def test_audio_codecs_change_the_audio_but_keep_it(clip):
    for name in ("aac_64k", "mp3_64k", "opus_24k"):
        audio = perturb(clip, _settings(name)).clip.audio
        err = float(np.abs(audio - clip.audio).mean())
        assert 0 < err < 0.5 * float(np.abs(clip.audio).mean()), name  # degraded, still the same signal


def test_shifts_move_the_audio_by_whole_frames_and_say_so(clip):
    a = clip.audio
    for k in (1, 2, 3, -1, -2, -3):
        made = perturb(clip, {"kind": "shift", "frames": k})
        n = abs(k) * SAMPLES_PER_FRAME
        out = made.clip.audio
        assert made.expected_shift == k
        if k > 0:  # the audio leads: its first n samples are gone
            assert np.array_equal(out[:-n], a[n:]) and not out[-n:].any()
        else:
            assert np.array_equal(out[n:], a[:-n]) and not out[:n].any()
    made = perturb(clip, {"kind": "lead_silence", "seconds": 0.1})
    assert made.expected_shift == pytest.approx(-2.5)  # 0.1 s = 2.5 frames of delay, kept fractional
    assert not made.clip.audio[:1600].any() and np.array_equal(made.clip.audio[1600:], a[:-1600])
    assert perturb(clip, _settings("frozen")).expected_shift is None
    assert perturb(clip, _settings("h264_crf28")).expected_shift == 0


def test_random_perturbations_depend_on_seed_and_clip_only(clip):
    for name in ("jitter_4px", "noise_sigma8"):
        s = _settings(name)
        first, again = perturb(clip, s).clip.video, perturb(clip, s).clip.video
        assert np.array_equal(first, again), name
        assert not np.array_equal(first, perturb(clip, {**s, "seed": s["seed"] + 1}).clip.video), name
        other = dataclasses.replace(clip, clip_id="spk/clip_1")
        assert not np.array_equal(first, perturb(other, s).clip.video), name


def test_spread_gap_and_detection_arithmetic():
    assert spread_of([("A", 1.0)]) is None and spread_of([("A", 1.0), ("B", 1.0)]) is None
    spread = spread_of([("Wav2Lip", 7.0), ("LipGAN", 5.0), ("Static", 1.0), ("Broken", float("nan"))])
    assert spread is not None and spread.value == 6.0
    assert spread.closest_gap(-2.2) == ("LipGAN", "Wav2Lip", 2.0)  # |delta| 2.2: the 2.0 gap, not the 4.0 one
    assert spread.closest_gap(3.5) == ("Static", "LipGAN", 4.0)
    tied = spread_of([("Wav2Lip", 0.0), ("LipGAN", 0.0), ("Static", 1.0)])  # two rows tie: no zero gap to compare
    assert tied is not None and tied.closest_gap(0.01) == ("LipGAN", "Static", 1.0)
    det = detection({"a": 0, "b": 1, "c": -2, "d": 0}, {"a": 3, "b": 3, "c": 3, "x": 3}, expected=3, tolerance=1)
    assert (det.detected, det.n) == (2, 3)  # a moved 3, b 2 (within 1), c 5 (no); d unscored, x not clean


def test_card_puts_changes_in_units_of_the_model_spread():
    passes = [
        PassSummary(
            "shift_+3",
            "shift",
            {"kind": "shift", "frames": 3},
            "audio shifted +3 frames",
            "audio",
            3.0,
            {"av_offset": 2.5, "av_conf": 4.0},
            {"av_offset": (2, 0), "av_conf": (2, 0)},
            {"av_offset": {"a": 3.0, "b": 2.0}},
        )
    ]
    card = build_card(
        dataset="synthetic",
        protocol={"name": "p", "hash": "0123456789ab", "n_clips": 2},
        metrics=["av_offset", "av_conf"],
        clean={"av_offset": 0.0, "av_conf": 6.0},
        clean_per_clip={"av_offset": {"a": 0.0, "b": 0.0}},
        passes=passes,
        board={"av_conf": [("Wav2Lip", 5.0), ("LipGAN", 3.0), ("Static", 0.0)], "av_offset": [("Wav2Lip", 0.0)]},
        tolerance=1.0,
    )
    conf = card["perturbations"][0]["metrics"]["av_conf"]
    assert conf["delta"] == -2.0 and conf["units"] == pytest.approx(-0.4)
    assert conf["closest_gap"] == {"rows": ["LipGAN", "Wav2Lip"], "gap": 2.0}
    assert "as much as the gap between LipGAN and Wav2Lip" in conf["sentence"]  # |delta| 2 = the 2.0 gap
    offset = card["perturbations"][0]["metrics"]["av_offset"]
    assert offset["units"] is None and offset["detection"]["detected"] == 2 and offset["detection"]["share"] == 1.0
    assert any("no between-model spread for AV offset" in n for n in card["notes"])
    md = to_markdown(card)
    assert "| shift_+3 | +3 | 2/2 |" in md and "-2.00 (-0.40)" in md
    assert card_path("reports", "synthetic", "0123456789ab", "md") == Path("reports/stress_synthetic_01234567.md")


def _fake_model_rows(runs: Path, gt: Results) -> None:
    """Two model rows under the GT row's protocol, their values the GT's moved by hand: the spread."""
    for name, scale in (("model_a", 1.0), ("model_b", 1.5)):
        run = dataclasses.replace(gt.run, name=name, kind="external", label=name.upper())
        metrics = {m: dataclasses.replace(r, value=r.value * scale + 1.0) for m, r in gt.metrics.items()}
        Results(run, gt.protocol, gt.evaluators, metrics).save(runs / "synthetic" / name / "results.json")


def test_bench_stress_resumes_per_clip_rescored_on_change_and_is_linked(tmp_path, monkeypatch, capsys):
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    calls: list[str] = []
    real = PERTURBATIONS["h264"]

    def counted(clip: Clip, settings):
        calls.append(clip.clip_id)
        return real.apply(clip, settings)

    monkeypatch.setitem(perturbations_module.PERTURBATIONS, "h264", dataclasses.replace(real, apply=counted))
    overrides = small_overrides(runs, expert=False, **{"metrics.names": "[ofm,fmse,psnr,ssim]"})
    base = ["stress", "--dataset", "synthetic", "--protocol", "standard", "--reports", str(reports)]
    args = [*base, "--perturbations", "h264_crf28,shift_+2", *overrides]
    assert main(args) == 0
    assert len(calls) == 3  # run.limit=3 clips, each perturbed once
    (stress_folder,) = (runs / "synthetic").glob("stress-*")
    rows = read_jsonl(stress_folder / "h264_crf28" / "samples.jsonl")
    assert len(rows) == 3 and all(r["key"]["settings"]["crf"] == 28 for r in rows)
    assert not list(stress_folder.rglob("results.json"))  # stress passes are never leaderboard rows

    # an interrupted pass: its last clip's record is lost; only that clip is perturbed and scored again
    write_jsonl_atomic(stress_folder / "h264_crf28" / "samples.jsonl", rows[:2])
    calls.clear()
    (gt_path, gt), *_ = [(p, r) for p, r in find_results(runs) if r.run.kind == "gt"]
    _fake_model_rows(runs, gt)
    assert main(args) == 0
    assert calls == [rows[2]["clip_id"]]

    # a changed setting is a different perturbation: every clip scored again
    config = load_stress_config()
    config["perturbations"]["h264_crf28"]["preset"] = "fast"
    changed = tmp_path / "stress.yaml"
    changed.write_text(json.dumps(config))
    calls.clear()
    assert main([*args, "--config", str(changed)]) == 0
    assert len(calls) == 3

    card = json.loads(card_path(reports, "synthetic", gt.protocol.hash, "json").read_text())
    assert [p["name"] for p in card["perturbations"]] == ["h264_crf28", "shift_+2"]
    ssim = card["perturbations"][0]["metrics"]["ssim"]
    assert ssim["delta"] < 0 and ssim["units"] is not None and ssim["closest_gap"]["rows"] == ["MODEL_A", "MODEL_B"]
    shift = card["perturbations"][1]["metrics"]
    assert shift["ofm"]["delta"] == 0 == shift["ssim"]["delta"]  # an audio shift leaves the video metrics alone
    assert shift["psnr"]["delta"] is None  # a clip's PSNR against itself is infinite: no change to measure
    assert any("no finite clean GT value for PSNR" in n for n in card["notes"])
    assert card_path(reports, "synthetic", gt.protocol.hash, "md").exists()

    from benchmark.tables import write_report

    files = write_report(runs, "synthetic", reports / "report_synthetic.html", grid_clips=0, bootstrap=None)
    link = card_path(reports, "synthetic", gt.protocol.hash, "html").name
    assert f'href="{link}"' in files.html.read_text()
    assert link.replace(".html", ".md") in files.markdown.read_text()
