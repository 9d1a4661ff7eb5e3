"""The HTML / Markdown report: charts and tables from fake run folders, per-clip distributions, sample grids."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from benchmark.results import MetricResult, Protocol, Results, RunInfo, write_jsonl_atomic
from benchmark.tables import (
    Bar,
    Series,
    bar_chart_svg,
    distribution_svg,
    nice_ticks,
    per_clip_values,
    write_report,
    write_sample_grid,
)
from data.clip import SAMPLES_PER_FRAME
from data.io import probe, read_audio, read_video, write_video

H, W = 32, 48
CLIPS = ["spk1/clip_a", "spk2/clip_b"]
FRAMES = {"wav2lip": 12, "lipgan": 14}  # the grid is cut to the shortest video (the GT has 13)
COLOURS = {"GT": (200, 40, 40), "wav2lip": (40, 200, 40), "lipgan": (40, 40, 200)}
PROTOCOL = Protocol("synthetic-test", "feedc0ffee12", "synthetic", "test", 2, {})


def _audio(n_frames: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(n_frames * SAMPLES_PER_FRAME) / 16_000
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _video(colour: tuple[int, int, int], n_frames: int) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (n_frames, H, W, 3)).copy()


def _run(
    root: Path, name: str, label: str, kind: str, metrics: dict, per_clip: dict, *, videos: bool, status=None
) -> Path:
    folder = root / "synthetic" / name
    run = RunInfo(name, kind, "synthetic", None, label, None, 0, None, {}, "2025-03-01T11:00:00+00:00", "x")
    evaluators = {"lipreader": {"weights": None, "sha256": "ab" * 32, "status": status}} if status else {}
    Results(run, PROTOCOL, evaluators, metrics).save(folder / "results.json")
    rows = [
        {"clip_id": c, "index": i, "values": {m: v[i] for m, v in per_clip.items()}, "raw": {}, "failed": {}}
        for i, c in enumerate(CLIPS)
    ]
    write_jsonl_atomic(folder / "samples.jsonl", rows)
    if videos:
        for clip_id in CLIPS:
            n = FRAMES[name]
            write_video(
                folder / "generated" / (clip_id.replace("/", "__") + ".mp4"), _video(COLOURS[name], n), _audio(n)
            )
    return folder


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    _run(
        root,
        "wav2lip",
        "Wav2Lip",
        "model",
        {
            "fvd_16f": MetricResult(120.0, 2, 0, "lower"),
            "av_conf": MetricResult(5.0, 2, 0, "higher"),
            "wer": MetricResult(0.5, 2, 0, "lower"),
        },
        {"av_conf": [4.0, 6.0], "wer": [0.4, 0.6]},
        videos=True,
        status="random",
    )
    _run(
        root,
        "lipgan",
        "LipGAN",
        "model",
        {
            "fvd_16f": MetricResult(300.0, 2, 0, "lower"),
            "av_conf": MetricResult(3.0, 2, 0, "higher"),
            "wer": MetricResult(0.8, 2, 0, "lower"),
        },
        {"av_conf": [2.5, 3.5], "wer": [0.7, 0.9]},
        videos=True,
        status="random",
    )
    _run(
        root,
        "GT-feedc0ff",
        "GT",
        "gt",
        {"av_conf": MetricResult(6.5, 2, 0, "higher"), "wer": MetricResult(0.1, 2, 0, "lower")},
        {"av_conf": [6.0, 7.0], "wer": [0.0, 0.2]},
        videos=False,
        status="random",
    )
    return root


def _reference(dataset: str, clip_ids):
    assert dataset == "synthetic"
    return {c: (_video(COLOURS["GT"], 13), _audio(13, 330.0)) for c in clip_ids}


@pytest.fixture(scope="module")
def report(runs_dir: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports") / "report_synthetic.html"
    return write_report(runs_dir, "synthetic", out, reference=_reference, grid_clips=2)


def test_report_has_table_charts_distributions_and_footnotes(report) -> None:
    page = report.html.read_text()
    assert (
        page.startswith("<!DOCTYPE html>")
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    # the leaderboard table: ranked rows, GT last with its own class
    board = page.split('<table class="board">')[1].split("</table>")[0]
    rows = re.findall(r'<tr class="(\w+)"><td>([^<]+)</td>', board)
    assert rows == [("ours", "LipGAN"), ("ours", "Wav2Lip"), ("gt", "GT")]
    assert '<td class="best">120.00</td>' in board and '<td class="second">300.00</td>' in board
    # WER comes from the lipreader, recorded as random-init: marked; AV conf. (SyncNet) is not. Per-clip metrics
    # carry half their bootstrap interval (a set metric such as FVD none); both rows' clips agree on the order,
    # so the paired bootstrap keeps the marks
    assert '<td class="best">0.50 ± 0.10†</td>' in board and '<td class="best">5.00 ± 1.00</td>' in board
    assert "percentile bootstrap interval" in page
    assert "random-init evaluator: not comparable to published numbers" in page
    # a bar chart per metric and a distribution per per-clip metric, inline and as files
    assert page.count('class="bar-chart"') == 3 and page.count('class="distribution"') == 2
    names = sorted(p.name for p in report.assets if p.suffix == ".svg")
    assert names == [
        "synthetic-feedc0ffee12_bar_av-conf.svg",
        "synthetic-feedc0ffee12_bar_fvd-16f.svg",
        "synthetic-feedc0ffee12_bar_wer.svg",
        "synthetic-feedc0ffee12_dist_av-conf.svg",
        "synthetic-feedc0ffee12_dist_wer.svg",
    ]
    for name in names:  # well-formed XML, so browsers and GitHub's Markdown render the files
        ElementTree.parse(report.html.parent / "report_synthetic_assets" / name)
    bar = (report.html.parent / "report_synthetic_assets" / names[0]).read_text()
    assert bar.count('class="bar gt"') == 1 and bar.count('class="bar ours"') == 2 and "higher is better" in bar
    assert "data:video/mp4;base64," in page and page.count('<figure class="grid">') == 2


def test_markdown_report_embeds_the_chart_files(report) -> None:
    text = report.markdown.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.svg)\)", text)
    assert len(links) == 5 and all((report.markdown.parent / link).is_file() for link in links)
    assert "| Wav2Lip | **120.00** |" in text
    grids = re.findall(r"\]\(([^)]+\.mp4)\): GT \| LipGAN \| Wav2Lip", text)
    assert len(grids) == 2 and all((report.markdown.parent / g).is_file() for g in grids)


def test_sample_grid_frames_width_tiles_and_audio(report) -> None:
    grid = next(p for p in report.assets if p.suffix == ".mp4")
    info = probe(grid)
    assert (info.width, info.height) == (3 * W, H)  # GT + two methods
    assert info.has_audio
    frames = read_video(grid)
    assert len(frames) == 12  # the shortest of GT (13), wav2lip (12), lipgan (14)
    # tiles in order GT, LipGAN, Wav2Lip (table order), each its own colour after H.264
    for i, name in enumerate(["GT", "lipgan", "wav2lip"]):
        tile = frames[:, 4:-4, i * W + 4 : (i + 1) * W - 4].reshape(-1, 3).mean(0)
        assert np.abs(tile - COLOURS[name]).max() < 12, (name, tile)
    audio = read_audio(grid)
    assert abs(len(audio) - 12 * SAMPLES_PER_FRAME) <= 2048  # AAC frames pad the end
    # the GT clip's audio (330 Hz), not a method's (440 Hz)
    spectrum = np.abs(np.fft.rfft(audio[:4096]))
    assert abs(np.argmax(spectrum) * 16_000 / 4096 - 330) < 8


def test_write_sample_grid_pads_odd_sizes(tmp_path: Path) -> None:
    tiles = [np.zeros((5, 15, 17, 3), np.uint8), np.full((6, 9, 9, 3), 255, np.uint8)]
    assert write_sample_grid(tmp_path / "g.mp4", tiles, _audio(5)) == 5
    info = probe(tmp_path / "g.mp4")
    assert (info.width, info.height) == (34, 16) and info.has_audio
    with pytest.raises(ValueError, match="at least one"):
        write_sample_grid(tmp_path / "x.mp4", [], _audio(5))


def test_report_without_gt_video_or_results(runs_dir: Path, tmp_path: Path) -> None:
    files = write_report(runs_dir, "synthetic", tmp_path / "r.html", reference=None, grid_clips=1)
    grid = next(p for p in files.assets if p.suffix == ".mp4")
    assert probe(grid).width == 2 * W and any("no GT video" in n for n in files.notes)
    with pytest.raises(ValueError, match="nothing to report"):
        write_report(runs_dir, "lrw", tmp_path / "r.html")
    with pytest.raises(ValueError, match=r"\.html"):
        write_report(runs_dir, "synthetic", tmp_path / "r.txt", grid_clips=0)


def test_per_clip_values_reads_samples(runs_dir: Path) -> None:
    values = per_clip_values(runs_dir / "synthetic" / "wav2lip")
    assert values == {
        "av_conf": {"spk1/clip_a": 4.0, "spk2/clip_b": 6.0},
        "wer": {"spk1/clip_a": 0.4, "spk2/clip_b": 0.6},
    }
    assert per_clip_values(runs_dir / "nowhere") == {}


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (0.0, 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]),
        (-3.0, 1.0, [-3.0, -2.0, -1.0, 0.0, 1.0]),
        (0.0, 372.0, [0.0, 100.0, 200.0, 300.0, 400.0]),
        (0.1, 0.3, [0.1, 0.15, 0.2, 0.25, 0.3]),
        (5.0, 5.0, [4.5, 4.75, 5.0, 5.25, 5.5]),
    ],
)
def test_nice_ticks(lo: float, hi: float, ticks: list[float]) -> None:
    assert nice_ticks(lo, hi) == ticks


def _attr(svg: str, cls: str, attr: str) -> list[float]:
    return [float(v) for v in re.findall(rf'<(?:rect|circle) class="{cls}"[^>]*? {attr}="([-\d.]+)"', svg)]


def test_bar_lengths_are_proportional_and_gt_line_for_match_gt() -> None:
    bars = [Bar("A", 1.0, mark="second"), Bar("B", 3.0, mark="best"), Bar("GT", 2.0, is_gt=True)]
    svg = bar_chart_svg("Blinks/s", "match_gt", bars, "blinks_per_s")
    widths = _attr(svg, "bar ours", "width") + _attr(svg, "bar gt", "width")
    assert widths == pytest.approx([250 / 3, 250.0, 500 / 3], abs=0.11)
    assert 'class="gt-line"' in svg and "closer to GT is better" in svg
    assert re.search(r'font-weight="bold">3\.00<', svg) and re.search(r'underline">1\.00<', svg)
    nan = bar_chart_svg("FVD", "lower", [Bar("A", 10.0), Bar("GT", math.nan, is_gt=True)], "fvd")
    assert 'class="gt-line"' not in nan and ">–</text>" in nan and nan.count("<rect") == 1
    # negative values grow left of the zero line
    neg = bar_chart_svg("AV offset", "match_gt", [Bar("A", -2.0), Bar("GT", 1.0, is_gt=True)], "av_offset")
    (x_neg,), (x_pos,) = _attr(neg, "bar ours", "x"), _attr(neg, "bar gt", "x")
    assert x_neg < x_pos


def test_long_row_labels_are_shown_whole() -> None:
    label = "Wav2Lip (wav2lip_untrained)"
    short = bar_chart_svg("AV conf.", "higher", [Bar("A", 1.0)], "av_conf")
    long = bar_chart_svg("AV conf.", "higher", [Bar(label, 1.0), Bar("A", 2.0)], "av_conf")
    assert f"</title>{label}</text>" in long and "…" not in long
    width = lambda svg: float(re.search(r'<svg [^>]*width="([\d.]+)"', svg).group(1))  # noqa: E731
    assert width(long) > width(short)
    (bar_x,) = set(_attr(long, "bar ours", "x"))
    assert bar_x >= 7 * len(label)  # the bars start right of the label column


def test_distribution_box_matches_quartiles_and_whiskers_skip_outliers() -> None:
    values = (*range(1, 10), 30.0)
    svg = distribution_svg("WER", "lower", [Series("A", tuple(map(float, values)))], "wer")
    (x,), (width,) = _attr(svg, "box", "x"), _attr(svg, "box", "width")
    # ticks 0..30 step 10 over 250 px: q1 = 3.25, q3 = 7.75 (numpy linear quantiles)
    assert x == pytest.approx(150 + 3.25 / 30 * 250, abs=0.06)
    assert width == pytest.approx(4.5 / 30 * 250, abs=0.11)
    assert svg.count('class="point"') == 10 and "n=10" in svg
    # the upper whisker ends at 9 (30 is beyond q3 + 1.5 IQR = 14.5)
    whisker = re.findall(
        r'<line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)" y2="[\d.]+" stroke="#4e79a7" stroke-width="1.5"', svg
    )
    assert float(whisker[0][1]) == pytest.approx(150 + 9 / 30 * 250, abs=0.06)


def test_report_over_chosen_run_folders(runs_dir: Path, tmp_path: Path) -> None:
    chosen = [runs_dir / "synthetic" / "wav2lip", runs_dir / "synthetic" / "GT-feedc0ff"]
    files = write_report(chosen, "synthetic", tmp_path / "table1_synthetic.html", grid_clips=0)
    board = files.html.read_text().split('<table class="board">')[1].split("</table>")[0]
    assert re.findall(r'<tr class="(\w+)"><td>([^<]+)</td>', board) == [("ours", "Wav2Lip"), ("gt", "GT")]
    assert files.markdown == tmp_path / "table1_synthetic.md" and not any(p.suffix == ".mp4" for p in files.assets)


def test_cli_html_and_standalone_latex(runs_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import benchmark.tables.grids
    from benchmark.cli import main

    monkeypatch.setattr(benchmark.tables.grids, "corpus_reference", lambda run_dirs: _reference)
    out = tmp_path / "r.html"
    args = ["leaderboard", "--runs", str(runs_dir), "--dataset", "synthetic", "--out", str(out)]
    assert main([*args, "--format", "html"]) == 0
    assert "wrote" in capsys.readouterr().out and out.with_suffix(".md").is_file()
    assert out.read_text().count('<figure class="grid">') == 2  # the GT tile came from the reference source
    tex = tmp_path / "t.tex"
    args[-1] = str(tex)
    assert main([*args, "--format", "latex", "--standalone"]) == 0
    assert tex.read_text().startswith("\\documentclass") and "\\textbf{Synthetic}" in tex.read_text()


def test_strip_of_a_large_test_set_is_a_quantile_sample() -> None:
    from benchmark.tables import MAX_STRIP_POINTS

    values = tuple(float(v) for v in np.random.default_rng(0).normal(size=5000))
    svg = distribution_svg("LSE-D", "lower", [Series("A", values), Series("GT", (0.0,), is_gt=True)], "lse_d")
    assert svg.count('class="point"') == MAX_STRIP_POINTS + 1 and "n=5000" in svg and "n=1<" in svg
    cx = sorted(_attr(svg, "point", "cx"))[:MAX_STRIP_POINTS]
    assert min(cx) < 200 and max(cx) > 350  # the sample spans the tails (ticks -4..4 over x 150..400)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Appended to a copy of the report: records, for every <video>, whether Chromium decoded a frame (readyState >= 2,
# a frame size, no media error), and how many charts were rendered.
_PROBE = """<script>
(function () {
  function report() {
    if (document.getElementById('probe')) return;
    var out = Array.from(document.querySelectorAll('video')).map(function (v) {
      return {ready: v.readyState, w: v.videoWidth, h: v.videoHeight, error: v.error ? v.error.code : 0};
    });
    var charts = Array.from(document.querySelectorAll('svg')).filter(function (s) {
      var box = s.getBoundingClientRect(); return box.width > 0 && box.height > 0;
    }).length;
    var el = document.createElement('pre'); el.id = 'probe';
    el.textContent = JSON.stringify({videos: out, charts: charts});
    document.body.appendChild(el);
  }
  var videos = Array.from(document.querySelectorAll('video')), left = videos.length;
  if (!left) return report();
  videos.forEach(function (v) {
    var done = false;
    function one() { if (!done) { done = true; if (--left === 0) report(); } }
    v.addEventListener('loadeddata', one); v.addEventListener('error', one);
    v.preload = 'auto'; v.load();
  });
  setTimeout(report, 8000);
})();
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_in_chromium_shows_every_chart_and_plays_every_video(report, tmp_path: Path) -> None:
    import json
    import subprocess

    import cv2

    page = tmp_path / "probe.html"
    page.write_text(report.html.read_text() + _PROBE)
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = json.loads(re.search(r'<pre id="probe">([^<]*)</pre>', dom).group(1).replace("&quot;", '"'))
    assert found["charts"] == 5  # every bar chart and distribution laid out
    assert len(found["videos"]) == 2
    for video in found["videos"]:  # decoded: a black player has readyState 0 or a media error
        assert video["error"] == 0 and video["ready"] >= 2 and video["w"] > 0 and video["h"] > 0, video
    shot = tmp_path / "report.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,2400", report.html.as_uri()], timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.std() > 10  # the page drew something, not a blank or black sheet
