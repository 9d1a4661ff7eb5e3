"""`bench study serve`: the rating page, one clip at a time (Starlette, served by uvicorn).

What a rater's browser can learn is a clip token (`/clips/<token>.mp4`, the form's hidden field) and nothing
else: the manifest is never served, the files carry no metadata and the same timestamp, and responses drop
Last-Modified and ETag. A rater is who their secret cookie says (:mod:`benchmark.study.store`); no form field
names a rater. Pages are plain HTML forms without scripts (the page forbids them), so a vote is a POST that
redirects to the next clip, and a reload never votes twice.
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmark.study.manifest import CLIPS_DIR, VOTES_DB, load_manifest
from benchmark.study.store import ANSWERS, VoteRefused, VoteStore

__all__ = ["COOKIE", "create_app", "resolve_clip", "serve"]

COOKIE = "study_rater"
_MAX_FORM_BYTES = 4096

_HEADERS = {
    # no scripts at all, media and forms only from this server, no framing: the page has nothing to leak
    "content-security-policy": "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

_STYLE = """body{font-family:sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
video{width:100%;max-height:60vh;background:#000}fieldset{border:1px solid #ccc;margin:.8rem 0}
label{margin-right:1.2rem}button{font-size:1.1rem;padding:.4rem 1.4rem}"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status)


def resolve_clip(clips_dir: Path, name: str, known: set[str]) -> Path | None:
    """The file ``name`` inside ``clips_dir``, or None for anything else: a name that is not a study clip's, a
    path (``..``, ``/abs``, ``a/b``), or a file whose real location is outside the folder (a symlink)."""
    if name not in known or "/" in name or "\\" in name or name in {".", ".."}:
        return None
    folder = clips_dir.resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        return None
    return path


def _score(fields: dict[str, list[str]], key: str) -> int | None:
    value = (fields.get(key) or [""])[0].strip()
    if not value:
        return None  # the scores are optional
    if not value.isdigit():
        raise VoteRefused(422, f"{key} must be a number from 1 to 5")
    return int(value)


class _SecurityHeaders:
    """Adds :data:`_HEADERS` to every response, and drops the validators that would tell files apart by time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                drop = {b"last-modified", b"etag", *(k.encode() for k in _HEADERS)}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in drop]
                message["headers"] = headers + [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(study_dir: str | Path) -> Starlette:
    """The study's web app over ``study_dir`` (made by `bench study create`); votes go to its ``votes.sqlite``."""
    study_dir = Path(study_dir)
    manifest = load_manifest(study_dir)
    clips_dir = study_dir / CLIPS_DIR
    known = {c.file for c in manifest.clips}
    store = VoteStore(study_dir / VOTES_DB, [c.token for c in manifest.clips])

    def home(request: Request) -> Response:
        rater = store.rater(request.cookies.get(COOKIE))
        if rater is None:
            return _page(
                "Real or generated?",
                "<p>You will see short talking-face videos one at a time. Some are real recordings, some were made "
                "by a computer. For each, say which you think it is, and, if you like, score its lip sync and "
                "naturalness from 1 (bad) to 5 (excellent).</p>"
                '<form method="post" action="/join"><label>Your name (optional) '
                '<input name="name" maxlength="80"></label> <button type="submit">Start</button></form>',
            )
        clip = store.next_clip(rater)
        total = len(rater.order)
        if clip is None:
            return _page("Thank you", f"<p>You rated all {total} clips. You can close this page.</p>")
        done = len(store.voted(rater))
        scores = "".join(
            f'<label>{label} <select name="{key}"><option value="">–</option>'
            + "".join(f'<option value="{i}">{i}</option>' for i in range(1, 6))
            + "</select></label>"
            for key, label in (("lipsync", "Lip sync"), ("naturalness", "Naturalness"))
        )
        answers = "".join(
            f'<label><input type="radio" name="answer" value="{a}" required> {a.capitalize()}</label>' for a in ANSWERS
        )
        return _page(
            f"Clip {done + 1} of {total}",
            f'<video src="/{CLIPS_DIR}/{clip}.mp4" controls autoplay playsinline preload="auto"></video>'
            f'<form method="post" action="/vote"><input type="hidden" name="clip" value="{clip}">'
            f"<fieldset><legend>Is this video real or generated?</legend>{answers}</fieldset>"
            f"<fieldset><legend>Optional scores (1 = bad, 5 = excellent)</legend>{scores}</fieldset>"
            '<button type="submit">Next</button></form>',
        )

    async def join(request: Request) -> Response:
        if await run_in_threadpool(store.rater, request.cookies.get(COOKIE)) is not None:
            return RedirectResponse("/", status_code=303)  # one browser, one rater: joining again changes nothing
        try:
            fields = await _form(request)
        except VoteRefused as refused:
            return _page("Not joined", f"<p>{html.escape(str(refused))}.</p>", refused.status)
        _, secret = await run_in_threadpool(store.join, (fields.get("name") or [""])[0])
        response = RedirectResponse("/", status_code=303)
        # HttpOnly: no page script can read it; SameSite=Strict: no other site's page can vote with it
        response.set_cookie(COOKIE, secret, max_age=90 * 24 * 3600, httponly=True, samesite="strict")
        return response

    async def vote(request: Request) -> Response:
        try:
            fields = await _form(request)
            await run_in_threadpool(
                store.vote,
                request.cookies.get(COOKIE),
                (fields.get("clip") or [""])[0],
                (fields.get("answer") or [""])[0],
                _score(fields, "lipsync"),
                _score(fields, "naturalness"),
            )
        except VoteRefused as refused:
            return _page(
                "Not recorded", f'<p>{html.escape(str(refused))}.</p><p><a href="/">Continue</a></p>', refused.status
            )
        return RedirectResponse("/", status_code=303)

    def video(request: Request) -> Response:
        rater = store.rater(request.cookies.get(COOKIE))
        if rater is None:
            return Response("join the study first", status_code=403, media_type="text/plain")
        name = str(request.path_params["name"])
        path = resolve_clip(clips_dir, name, known)
        if path is None or name.removesuffix(".mp4") not in rater.order:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type="video/mp4")

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/join", join, methods=["POST"]),
        Route("/vote", vote, methods=["POST"]),
        # {name:path} takes the rest of the URL, slashes and all, so resolve_clip sees and refuses every path
        Route(f"/{CLIPS_DIR}/{{name:path}}", video, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(_SecurityHeaders)
    return app


async def _form(request: Request) -> dict[str, list[str]]:
    """A urlencoded form, read without python-multipart (the page posts nothing else), refused when large."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise VoteRefused(413, "form too large")
    return parse_qs(body.decode("utf-8", "replace"), max_num_fields=16)


def serve(study_dir: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the study until interrupted. Every vote is on disk when its page answers, so stopping and starting
    the server (or the machine) at any time loses nothing; raters continue where they stopped."""
    import uvicorn

    app = create_app(study_dir)
    print(f"study {Path(study_dir).resolve()}: open http://{host}:{port}/ (Ctrl-C stops; votes are kept)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
