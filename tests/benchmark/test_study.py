"""The human study (`bench study`): statistics against hand-computed values, the selection and manifest, the vote
store (restart, double votes), and the server's security properties tried one by one through an HTTP client."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from benchmark.results import MetricResult, Protocol, Results, RunInfo, write_jsonl_atomic
from benchmark.study.create import StudyRequest, create_study
from benchmark.study.manifest import CLIPS_DIR, MANIFEST, VOTES_DB, Manifest, StudyClip, StudyError, load_manifest
from benchmark.study.report import compute_report, render, study_report
from benchmark.study.stats import fleiss_kappa, mean_interval, wilson_interval
from benchmark.study.store import VoteRefused, VoteStore
from data.clip import SAMPLES_PER_FRAME
from data.io import read_video, write_video

H, W, FRAMES = 32, 48, 10
CLIPS = {"spk1/c1": "spk1", "spk1/c2": "spk1", "spk2/c3": "spk2", "spk2/c4": "spk2"}
METHODS = {"wav2lip": ("Wav2Lip", (40, 200, 40)), "lipgan": ("LipGAN", (40, 40, 200))}
PROTOCOL = Protocol("synthetic-test", "feedc0ffee12", "synthetic", "test", len(CLIPS), {})


def _audio(n_frames: int) -> np.ndarray:
    t = np.arange(n_frames * SAMPLES_PER_FRAME) / 16_000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _video(colour: tuple[int, int, int]) -> np.ndarray:
    frames = np.broadcast_to(np.array(colour, np.uint8), (FRAMES, H, W, 3)).copy()
    frames[:, : H // 4] = 250  # a bright top band: the attention check turns it dark and moves it to the bottom
    return frames


def make_runs(root: Path) -> Path:
    """Two finished runs of 'synthetic' with generated/*.mp4 and samples.jsonl (speakers), as `bench run` leaves."""
    for name, (label, colour) in METHODS.items():
        folder = root / "synthetic" / name
        run = RunInfo(name, "model", "synthetic", name, label, "tiny", 0, None, {}, "2025-03-01T10:00:00", "x")
        Results(run, PROTOCOL, {}, {"av_conf": MetricResult(5.0, 4, 0, "higher")}).save(folder / "results.json")
        rows = [{"clip_id": c, "index": i, "speaker": s, "values": {}} for i, (c, s) in enumerate(CLIPS.items())]
        write_jsonl_atomic(folder / "samples.jsonl", rows)
        for clip_id in CLIPS:
            write_video(folder / "generated" / (clip_id.replace("/", "__") + ".mp4"), _video(colour), _audio(FRAMES))
    return root


def reference(dataset: str, clip_ids) -> dict:
    assert dataset == "synthetic"
    return {c: (_video((200, 40, 40)), _audio(FRAMES)) for c in clip_ids if c in CLIPS}


REQUEST = StudyRequest("synthetic", ["wav2lip", "LipGAN"], n_real=2, per_method=2, seed=7, attention=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return make_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def study(runs: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("studies") / "s1"
    create_study(runs, REQUEST, folder, reference=reference)
    return folder


# ----------------------------------------------------------------------------------------------------------------
# statistics, by hand


def test_wilson_interval_by_hand() -> None:
    # 8 of 10 at 95%: z = 1.959964, z² = 3.841459, z²/n = 0.3841459, denominator 1 + z²/n = 1.3841459
    # centre = (0.8 + z²/2n) / 1.3841459 = (0.8 + 0.1920729) / 1.3841459 = 0.7167402
    # half = z / 1.3841459 * sqrt(0.8 * 0.2 / 10 + z² / (4 * 100)) = 1.4160097 * sqrt(0.016 + 0.0096036)
    #      = 1.4160097 * 0.1600114 = 0.2265777  -> [0.4901625, 0.9433178]
    ci = wilson_interval(8, 10)
    assert ci.value == 0.8 and ci.low == pytest.approx(0.4901625, abs=1e-6)
    assert ci.high == pytest.approx(0.9433178, abs=1e-6)
    # 0 of 10: the lower bound is 0, the upper z²/n / (1 + z²/n) = 0.3841459 / 1.3841459 = 0.2775328
    zero = wilson_interval(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.2775328, abs=1e-6)
    assert wilson_interval(10, 10).high == 1.0
    # 8 of 10 at 90%: z = 1.644854, z² = 2.705543, denominator 1.2705543; centre (0.8 + 0.1352772) / 1.2705543
    # = 0.7361174; half = 1.2945953 * sqrt(0.016 + 0.0067639) = 1.2945953 * 0.1508770 = 0.1953246
    # -> [0.5407928, 0.9314420]
    ninety = wilson_interval(8, 10, 0.90)
    assert (ninety.low, ninety.high) == pytest.approx((0.5407928, 0.9314420), abs=1e-6)
    assert math.isnan(wilson_interval(0, 0).value)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_fleiss_kappa_by_hand() -> None:
    # counts [real, generated] per clip; the last clip has only two raters (unequal n_i)
    # P_i: [3,0] (9-3)/(3·2) = 1; [2,1] (4+1-3)/6 = 1/3; [0,3] 1; [1,1] (1+1-2)/(2·1) = 0 -> P̄ = (7/3)/4 = 7/12
    # pooled shares: real 6/11, generated 5/11 -> P_e = (36 + 25)/121 = 61/121
    # κ = (7/12 - 61/121) / (1 - 61/121) = (115/1452) / (60/121) = 115/720 = 0.1597222
    assert fleiss_kappa([[3, 0], [2, 1], [0, 3], [1, 1]]) == pytest.approx(115 / 720, abs=1e-12)
    # Fleiss (1971)'s worked example (10 subjects, 14 raters, 5 categories): κ = 0.210
    example = [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]  # fmt: skip
    assert fleiss_kappa(example) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa([[2, 0], [3, 0]]) != fleiss_kappa([[2, 0], [3, 0]])  # one category only: NaN
    assert math.isnan(fleiss_kappa([[1, 0]]))  # no clip with two ratings
    assert fleiss_kappa([[2, 0], [0, 2]]) == 1.0


def test_mean_interval_by_hand() -> None:
    # [2, 3, 4, 5]: mean 3.5, s = sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3) = 1.2909944, t(0.975, 3) = 3.1824463
    # half = 3.1824463 * 1.2909944 / 2 = 2.0542603
    ci = mean_interval([2, 3, 4, 5])
    assert ci.value == 3.5 and ci.half_width == pytest.approx(2.0542603, abs=1e-6)
    assert math.isnan(mean_interval([4]).low) and mean_interval([4]).value == 4


# ----------------------------------------------------------------------------------------------------------------
# selection and manifest


def test_create_balances_speakers_and_hides_methods(study: Path, runs: Path, tmp_path: Path) -> None:
    manifest = load_manifest(study)
    by_row = {row: [c for c in manifest.clips if c.method == row] for row in manifest.rows()}
    assert manifest.rows() == ["Wav2Lip", "LipGAN", "Real"]
    for row, clips in by_row.items():
        assert len(clips) == 2 and {c.speaker for c in clips} == {"spk1", "spk2"}, row  # one clip per speaker
    # six rows' clips over four test clips: every test clip is used before any is used twice
    assert len({c.clip_id for c in manifest.clips if c.clip_id}) == 4
    checks = [c for c in manifest.clips if c.kind == "attention"]
    assert len(checks) == 1 and checks[0].method is None and checks[0].source in manifest.by_token()
    files = sorted(p.name for p in (study / CLIPS_DIR).iterdir())
    assert files == sorted(c.file for c in manifest.clips)
    assert all(re.fullmatch(r"[0-9a-f]{16}\.mp4", f) for f in files)
    for path in (study / CLIPS_DIR).iterdir():  # no method, run or clip name inside the files either
        data = path.read_bytes().lower()
        assert all(word.encode() not in data for word in ("wav2lip", "lipgan", "spk1", "spk2", "__c1", "synthetic"))
    assert len({p.stat().st_mtime for p in (study / CLIPS_DIR).iterdir()}) == 1

    again = create_study(runs, REQUEST, tmp_path / "again", reference=reference)  # same seed: the same study
    assert [(c.token, c.method, c.clip_id) for c in again.clips] == [
        (c.token, c.method, c.clip_id) for c in manifest.clips
    ]
    other = create_study(runs, StudyRequest(**{**REQUEST.__dict__, "seed": 8}), tmp_path / "o", reference=reference)
    assert {c.token for c in other.clips}.isdisjoint(c.token for c in manifest.clips)


def test_attention_check_is_the_source_upside_down_and_inverted(study: Path) -> None:
    manifest = load_manifest(study)
    check = next(c for c in manifest.clips if c.kind == "attention")
    source = read_video(study / CLIPS_DIR / f"{check.source}.mp4").astype(float)
    broken = read_video(study / CLIPS_DIR / check.file).astype(float)
    assert np.abs(broken - (255 - source[:, ::-1])).mean() < 8  # codec noise only


def test_create_refuses_what_it_cannot_do(runs: Path, study: Path, tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="not empty"):
        create_study(runs, REQUEST, study, reference=reference)
    with pytest.raises(StudyError, match="no finished run"):
        create_study(runs, StudyRequest("synthetic", ["vasa"], 0, 1), tmp_path / "a", reference=reference)
    with pytest.raises(StudyError, match="fewer than --per-method"):
        create_study(runs, StudyRequest("synthetic", ["wav2lip"], 0, 5), tmp_path / "b", reference=reference)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------------------------------------------
# the store


def test_store_refuses_forged_unassigned_and_double_votes_and_survives_restart(tmp_path: Path) -> None:
    clips = ["a" * 16, "b" * 16, "c" * 16]
    store = VoteStore(tmp_path / "v.sqlite", clips)
    rater, secret = store.join("ann")
    assert len(secret) >= 22  # 128 bits, urlsafe base64
    first = store.next_clip(rater)
    assert first == rater.order[0]
    store.vote(secret, first, "real", 4, None)
    for bad, status in ((None, 403), ("forged-" + secret, 403), ("", 403)):
        with pytest.raises(VoteRefused) as err:
            store.vote(bad, rater.order[1], "real")
        assert err.value.status == status
    with pytest.raises(VoteRefused) as err:
        store.vote(secret, "d" * 16, "real")
    assert err.value.status == 404
    with pytest.raises(VoteRefused) as err:  # refused, and the first answer stands
        store.vote(secret, first, "generated")
    assert err.value.status == 409
    with pytest.raises(VoteRefused) as err:
        store.vote(secret, rater.order[1], "maybe")
    assert err.value.status == 422
    with pytest.raises(VoteRefused) as err:
        store.vote(secret, rater.order[1], "real", lipsync=6)
    assert err.value.status == 422

    reopened = VoteStore(tmp_path / "v.sqlite", clips)  # a restart: a new process, the same file
    again = reopened.rater(secret)
    assert again == rater and reopened.next_clip(again) == rater.order[1]
    assert [(v.clip, v.answer, v.lipsync) for v in reopened.votes()] == [(first, "real", 4)]
    assert reopened.votes()[0].seconds is not None and reopened.votes()[0].seconds >= 0
    with sqlite3.connect(tmp_path / "v.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = [r[0] for r in db.execute("SELECT secret_sha256 FROM raters")]
    assert secret not in stored  # only its digest is kept


# ----------------------------------------------------------------------------------------------------------------
# the report from scripted votes

SCRIPT_CLIPS = [
    StudyClip("a1" * 8, "generated", "A", "a", "s1/x"),
    StudyClip("a2" * 8, "generated", "A", "a", "s2/x"),
    StudyClip("b1" * 8, "generated", "B", "b", "s1/y"),
    StudyClip("b2" * 8, "generated", "B", "b", "s2/y"),
    StudyClip("c1" * 8, "real", "Real", None, "s1/z"),
    StudyClip("c2" * 8, "real", "Real", None, "s2/z"),
    StudyClip("e1" * 8, "attention", None, None, None, source="c1" * 8),
]
# answers of raters 1-3 per clip (R real, G generated) and lip-sync scores (0: none given); rater 4 calls
# everything real, the attention check included, so their votes are excluded
SCRIPT = {
    "a1": ("RGG", (4, 3, 0)),
    "a2": ("RRG", (5, 4, 2)),
    "b1": ("GGG", (1, 2, 1)),
    "b2": ("GGR", (2, 0, 0)),
    "c1": ("RRR", (5, 5, 4)),
    "c2": ("RGR", (4, 5, 5)),
    "e1": ("GGG", (0, 0, 0)),
}


def _scripted_study(folder: Path) -> Path:
    from benchmark.study.manifest import StudyMethod

    methods = [StudyMethod("A", "a", "a", "/x"), StudyMethod("B", "b", "b", "/y")]
    Manifest("synthetic", 0, "2025-01-01", methods, SCRIPT_CLIPS, {}).save(folder)
    store = VoteStore(folder / VOTES_DB, [c.token for c in SCRIPT_CLIPS])
    secrets = [store.join(f"r{i}")[1] for i in range(4)]
    for short, (answers, scores) in SCRIPT.items():
        for secret, answer, score in zip(secrets, answers, scores):
            store.vote(secret, short * 8, "real" if answer == "R" else "generated", score or None, None)
        store.vote(secrets[3], short * 8, "real", 5, 5)
    return folder


def test_report_from_scripted_votes_matches_hand_computation(tmp_path: Path) -> None:
    report = study_report(_scripted_study(tmp_path))
    rows = {r.method: r for r in report.rows}
    assert list(rows) == ["A", "B", "Real"]
    # judged real: A 3 of 6 (a1 R··, a2 RR·), B 1 of 6, Real 5 of 6; rater 4 (7 votes) excluded
    assert (rows["A"].judged_real.value, rows["A"].judged_real.n) == (0.5, 6)
    # Wilson 3/6: z²/n = 0.6402432, centre 0.5, half = 1.959964/1.6402432 * sqrt(0.25/6 + 3.841459/144)
    # = 1.1949224 * 0.2614259 = 0.3123837 -> [0.1876163, 0.8123837]
    assert (rows["A"].judged_real.low, rows["A"].judged_real.high) == pytest.approx((0.1876163, 0.8123837), abs=1e-6)
    # Wilson 1/6: centre (1/6 + 0.3201216)/1.6402432 = 0.2967786, half 1.1949224 * sqrt(0.0231481 + 0.0266768)
    # = 0.2667252 -> [0.0300534, 0.5635038]; 5/6 mirrors it
    assert (rows["B"].judged_real.low, rows["B"].judged_real.high) == pytest.approx((0.0300534, 0.5635028), abs=1e-6)
    assert (rows["Real"].judged_real.low, rows["Real"].judged_real.high) == pytest.approx(
        (1 - 0.5635028, 1 - 0.0300534), abs=1e-6
    )
    # κ over the six study clips, three raters each: [real, generated] = a1 [1,2], a2 [2,1], b1 [0,3], b2 [1,2],
    # c1 [3,0], c2 [2,1]; P_i = 1/3 for the four split clips, 1 for b1 and c1 -> P̄ = (4/3 + 2)/6 = 5/9;
    # 9 real of 18 -> P_e = 0.5² + 0.5² = 1/2; κ = (5/9 - 1/2) / (1/2) = 1/9
    assert report.kappa == pytest.approx(1 / 9, abs=1e-12) and report.kappa_clips == 6
    assert (report.raters, report.failed_raters, report.failed_votes) == (3, 1, 7)
    # lip sync of A: [4, 3, 5, 4, 2] mean 3.6, s = sqrt(5.2/4) = 1.1401754, t(0.975, 4) = 2.7764451,
    # half = 2.7764451 * 1.1401754 / sqrt(5) = 1.4157148
    assert rows["A"].lipsync.value == pytest.approx(3.6) and rows["A"].lipsync.half_width == pytest.approx(1.4157148)
    assert rows["A"].naturalness.n == 0  # only the excluded rater gave naturalness scores

    text = render(report, "markdown")
    assert "| A | 50.0 \\[18.8, 81.2\\] | 3.60 ± 1.42 | – | 6 |" in text and "κ = 0.111" in text
    csv = render(report, "csv").splitlines()
    assert csv[0].startswith("method,kind,clips,votes,judged_real,judged_real_ci_low,judged_real_ci_high")
    latex = render(report, "latex")
    assert r"Real & 83.3 {[}43.6, 97.0{]}" in latex and r"\midrule" in latex
    assert "<td>LipGAN</td>" not in render(report, "html") and "<td>B</td>" in render(report, "html")


def test_report_drops_only_failed_raters_and_keeps_partial_ones(tmp_path: Path) -> None:
    manifest = Manifest("synthetic", 0, "x", [], SCRIPT_CLIPS[4:], {})
    store = VoteStore(tmp_path / "v.sqlite", [c.token for c in manifest.clips])
    _, done = store.join()
    _, partial = store.join()
    for token in ("c1" * 8, "c2" * 8, "e1" * 8):
        store.vote(done, token, "real" if token != "e1" * 8 else "generated")
    store.vote(partial, "c1" * 8, "generated")  # has not reached the attention check: not failed
    report = compute_report(manifest, store.votes())
    assert (report.raters, report.failed_raters) == (2, 0)
    assert (report.rows[0].judged_real.value, report.rows[0].judged_real.n) == (2 / 3, 3)
    assert report.kappa_clips == 1  # c1 alone has two answers


# ----------------------------------------------------------------------------------------------------------------
# the server, through an HTTP client: every security property tried


@pytest.fixture
def client_for(study: Path, tmp_path: Path):
    pytest.importorskip("httpx", reason="httpx (the dev extra) drives Starlette's test client")
    from starlette.testclient import TestClient

    from benchmark.study.server import create_app

    def make(folder: Path = study) -> TestClient:
        return TestClient(create_app(folder), follow_redirects=False)

    yield make
    (study / VOTES_DB).unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        (study / (VOTES_DB + suffix)).unlink(missing_ok=True)


def _join(client) -> str:
    response = client.post("/join", data={"name": "x"})
    assert response.status_code == 303
    cookie = response.cookies["study_rater"]
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header
    client.cookies.clear()  # each request names its rater explicitly
    return cookie


def _current(client, cookie: str) -> str:
    page = client.get("/", cookies={"study_rater": cookie}).text
    return re.search(r'name="clip" value="([0-9a-f]{16})"', page).group(1)


def test_pages_and_urls_carry_only_tokens(client_for, study: Path) -> None:
    client = client_for()
    manifest = load_manifest(study)
    words = ["wav2lip", "lipgan", "spk1", "spk2", "generated/", "study.json", *(c.clip_id for c in manifest.clips)]
    cookie = _join(client)
    for _ in range(len(manifest.clips)):
        page = client.get("/", cookies={"study_rater": cookie})
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        text = page.text.lower()
        assert not [w for w in words if w and w.lower() in text]
        assert set(re.findall(r'(?:src|value|href|action)="([^"]*)"', text)) <= {
            *(f"/clips/{c.file}" for c in manifest.clips), *(c.token for c in manifest.clips),
            "/vote", "/", "real", "generated", "", *map(str, range(1, 6)),
        }  # fmt: skip
        token = _current(client, cookie)
        video = client.get(f"/clips/{token}.mp4", cookies={"study_rater": cookie})
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert "last-modified" not in video.headers and "etag" not in video.headers
        assert client.post("/vote", data={"clip": token, "answer": "generated"}, cookies={"study_rater": cookie})
    assert "rated all" in client.get("/", cookies={"study_rater": cookie}).text


def test_video_paths_cannot_leave_the_study_folder(client_for, study: Path, tmp_path: Path) -> None:
    client = client_for()
    cookie = _join(client)
    token = _current(client, cookie)
    (tmp_path / "secret.mp4").write_bytes(b"outside")
    for path in [
        "/clips/..%2Fstudy.json",
        "/clips/%2E%2E/study.json",
        "/clips/../study.json",
        "/clips/%2Fetc%2Fpasswd",
        "/clips//etc/passwd",
        f"/clips/{tmp_path}/secret.mp4",
        "/clips/" + "0" * 16 + ".mp4",  # a well-formed token of no clip
        f"/clips/{token}",
        "/study.json",
        "/votes.sqlite",
    ]:
        response = client.get(path, cookies={"study_rater": cookie})
        assert response.status_code == 404, path
        assert b"outside" not in response.content and b"schema" not in response.content
    assert client.get(f"/clips/{token}.mp4").status_code == 403  # no rater, no video
    # a clip file replaced by a symlink pointing out of the folder is refused too
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    target = copy / CLIPS_DIR / f"{token}.mp4"
    target.unlink()
    target.symlink_to(tmp_path / "secret.mp4")
    other = client_for(copy)
    other_cookie = _join(other)
    assert other.get(f"/clips/{token}.mp4", cookies={"study_rater": other_cookie}).status_code == 404


def test_votes_are_the_cookie_holders_alone(client_for, study: Path) -> None:
    client = client_for()
    a, b = _join(client), _join(client)
    clip_a = _current(client, a)
    # rater A names rater B in every way a form could: the vote is still A's
    response = client.post(
        "/vote", data={"clip": clip_a, "answer": "real", "rater": "2", "secret": b}, cookies={"study_rater": a}
    )
    assert response.status_code == 303
    store = VoteStore(study / VOTES_DB, [])
    assert [(v.rater, v.clip) for v in store.votes()] == [(1, clip_a)]
    assert _current(client, b) == store.rater(b).order[0]  # B's progress untouched
    forged = client.post("/vote", data={"clip": clip_a, "answer": "real"}, cookies={"study_rater": "A" * 22})
    absent = client.post("/vote", data={"clip": clip_a, "answer": "real"})
    assert forged.status_code == absent.status_code == 403
    again = client.post("/vote", data={"clip": clip_a, "answer": "generated"}, cookies={"study_rater": a})
    assert again.status_code == 409 and store.votes()[0].answer == "real"
    unassigned = client.post("/vote", data={"clip": "f" * 16, "answer": "real"}, cookies={"study_rater": a})
    assert unassigned.status_code == 404
    big = client.post("/vote", content=b"clip=" + b"a" * 5000, cookies={"study_rater": a})
    assert big.status_code == 413
    assert len(store.votes()) == 1
    assert "Real or generated" in client.get("/", cookies={"study_rater": "forged"}).text  # the join page
    rejoined = client.post("/join", data={"name": "again"}, cookies={"study_rater": a})
    assert rejoined.status_code == 303 and "set-cookie" not in rejoined.headers  # still rater A
    assert len(store.raters()) == 2


def test_cli_create_and_report(runs: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import benchmark.study.create
    from benchmark.cli import main

    monkeypatch.setattr(benchmark.study.create, "corpus_reference", lambda dirs: reference)
    folder = tmp_path / "cli_study"
    args = ["study", "create", "--dataset", "synthetic", "--methods", "wav2lip,lipgan", "--real", "2"]
    assert main([*args, "--per-method", "2", "--seed", "3", "--runs", str(runs), "--study", str(folder)]) == 0
    assert "8 clips (Wav2Lip 2, LipGAN 2, Real 2, 2 attention checks)" in capsys.readouterr().out
    assert json.loads((folder / MANIFEST).read_text())["seed"] == 3
    out = tmp_path / "t2.tex"
    assert main(["study", "report", "--study", str(folder), "--format", "latex", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "no votes counted yet" in printed and r"\begin{tabular}" in out.read_text()


@pytest.mark.skipif(
    shutil.which("pdflatex") is None, reason="pdflatex is not installed (apt-get install texlive-latex-recommended)"
)
def test_latex_report_compiles(tmp_path: Path) -> None:
    from benchmark.tables.latex import latex_document

    report = study_report(_scripted_study(tmp_path))
    report.rows[0] = replace(report.rows[0], method="Method_with #special & chars 100%")
    (tmp_path / "t.tex").write_text(latex_document(render(report, "latex")))
    env = {**os.environ, "TEXMFVAR": str(tmp_path / "texmf-var")}
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Missing $" not in proc.stdout and "mktex" not in proc.stdout + proc.stderr
