"""`bench study serve` end to end in headless Chromium (Debian's `chromium`, driven by Playwright): two raters vote
at the same time, the server is killed (SIGKILL, as a crash) and restarted in the middle, both raters continue
where they stopped, and the report is computed from the stored votes. The security properties are tried against
the running server as a browser and a raw HTTP client see it."""

from __future__ import annotations

import asyncio
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    import playwright.async_api as playwright_api
except ImportError:  # the dev extra not installed
    playwright_api = None

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(playwright_api is None, reason="playwright is not installed (pip install -e '.[dev]')"),
]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(study: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "benchmark.cli", "study", "serve", "--study", str(study), "--port", str(port)]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not listen within 30 s")


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)  # a crash: no shutdown handler runs
    proc.wait(timeout=10)


def _raw_get(port: int, path: str, cookie: str | None) -> int:
    """GET ``path`` exactly as written (a browser would normalise ``..`` away before sending it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Cookie": f"study_rater={cookie}"} if cookie else {})
    status = conn.getresponse().status
    conn.close()
    return status


async def _rate(page, base: str, answers: dict[str, str], count: int, seen: list[str]) -> None:
    """Vote on ``count`` clips as a rater would: wait for the video to decode, pick an answer, submit."""
    for _ in range(count):
        await page.goto(base + "/")
        heading = await page.inner_text("h1")
        assert re.fullmatch(r"Clip \d+ of \d+", heading), heading
        assert int(heading.split()[1]) == len(seen) + 1  # continues where this rater stopped, even after a restart
        src = await page.get_attribute("video", "src")
        token = re.fullmatch(r"/clips/([0-9a-f]{16})\.mp4", src or "").group(1)
        await page.wait_for_function(
            "() => { const v = document.querySelector('video'); return v.readyState >= 2 && v.videoWidth > 0; }",
            timeout=15_000,
        )
        await page.check(f"input[name=answer][value={answers[token]}]")
        score = str(1 + int(token, 16) % 5)
        await page.select_option("select[name=lipsync]", score)
        async with page.expect_navigation():
            await page.click("button[type=submit]")
        seen.append(token)


def test_two_raters_a_restart_and_the_report(tmp_path: Path) -> None:
    from test_study import REQUEST, make_runs, reference

    from benchmark.study.create import create_study
    from benchmark.study.manifest import VOTES_DB, load_manifest
    from benchmark.study.report import study_report
    from benchmark.study.stats import fleiss_kappa, wilson_interval
    from benchmark.study.store import VoteStore

    study = tmp_path / "study"
    create_study(make_runs(tmp_path / "runs"), REQUEST, study, reference=reference)
    manifest = load_manifest(study)
    clips = manifest.by_token()
    n = len(manifest.clips)
    secret_words = ["wav2lip", "lipgan", "spk1", "spk2", "synthetic", "study.json", "attention"]
    rng = random.Random(0)
    # what each rater answers per clip, fixed in advance; attention checks are answered right by both
    answers = [
        {t: "generated" if c.kind == "attention" else rng.choice(["real", "generated"]) for t, c in clips.items()}
        for _ in range(2)
    ]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    seen: list[list[str]] = [[], []]
    server = _start(study, port)
    try:

        async def session() -> list[str]:
            async with playwright_api.async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
                )
                contexts = [await browser.new_context() for _ in range(2)]
                pages = [await c.new_page() for c in contexts]
                for page in pages:
                    await page.goto(base + "/")
                    assert "Real or generated?" in await page.content()
                    await page.fill("input[name=name]", "rater")
                    async with page.expect_navigation():
                        await page.click("button[type=submit]")
                cookies = [(await c.cookies())[0] for c in contexts]
                assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
                assert await pages[0].evaluate("document.cookie") == ""  # no script can read the secret
                first = n // 2
                await asyncio.gather(*(_rate(pages[i], base, answers[i], first, seen[i]) for i in range(2)))

                nonlocal server
                _kill(server)  # mid-study; both raters hold a page of their next clip
                server = _start(study, port)

                await asyncio.gather(*(_rate(pages[i], base, answers[i], n - first, seen[i]) for i in range(2)))
                for page in pages:
                    await page.goto(base + "/")
                    assert "rated all" in await page.inner_text("body")
                    text = (await page.content()).lower()
                    assert not [w for w in secret_words if w in text]
                # a video outside the rater's study or folder is refused in the browser too
                response = await pages[0].goto(base + "/clips/" + "0" * 16 + ".mp4")
                assert response is not None and response.status == 404
                # a page that forges the rater's cookie is a stranger: the join page, and no vote
                await contexts[1].clear_cookies()
                await contexts[1].add_cookies([{**cookies[1], "value": cookies[1]["value"][::-1]}])
                await pages[1].goto(base + "/")
                assert "Real or generated?" in await pages[1].content()
                await browser.close()
                return [c["value"] for c in cookies]

        secrets = asyncio.run(asyncio.wait_for(session(), timeout=90))
        for path in ["/clips/../study.json", "/clips/..%2Fstudy.json", "/clips/%2Fetc%2Fpasswd", "/study.json"]:
            assert _raw_get(port, path, secrets[0]) == 404, path
        assert _raw_get(port, f"/clips/{seen[0][0]}.mp4", None) == 403
        assert _raw_get(port, f"/clips/{seen[0][0]}.mp4", secrets[0]) == 200
    finally:
        if server.poll() is None:
            _kill(server)

    # every clip voted once by each rater, in the order each was shown, none lost to the restart
    assert [sorted(s) for s in seen] == [sorted(clips)] * 2 and seen[0] != seen[1]
    votes = VoteStore(study / VOTES_DB, list(clips)).votes()
    assert len(votes) == 2 * n and len({(v.rater, v.clip) for v in votes}) == 2 * n
    assert {(v.rater, v.clip): v.answer for v in votes} == {(r + 1, t): answers[r][t] for r in range(2) for t in clips}
    assert all(v.lipsync == 1 + int(v.clip, 16) % 5 and v.seconds is not None for v in votes)

    report = study_report(study)
    for row in report.rows:
        tokens = [t for t, c in clips.items() if c.method == row.method]
        real = sum(answers[r][t] == "real" for r in range(2) for t in tokens)
        expected = wilson_interval(real, 2 * len(tokens))
        assert (row.judged_real.value, row.judged_real.low, row.judged_real.high) == (
            expected.value, expected.low, expected.high,
        )  # fmt: skip
    counts = [[sum(a[t] == x for a in answers) for x in ("real", "generated")] for t, c in clips.items()
              if c.kind != "attention"]  # fmt: skip
    assert report.kappa == pytest.approx(fleiss_kappa(counts), nan_ok=True)
    assert (report.raters, report.failed_raters) == (2, 0)
