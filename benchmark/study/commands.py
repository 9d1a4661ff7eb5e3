"""`bench study create | serve | report` (arguments: benchmark/cli_args.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["study_command"]


def study_command(args: argparse.Namespace) -> int:
    if args.study_command == "create":
        from benchmark.study.create import StudyRequest, create_study

        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        request = StudyRequest(args.dataset, methods, args.real, args.per_method, args.seed, args.attention)
        folder = args.study or Path("studies") / f"{args.dataset}_seed{args.seed}"
        manifest = create_study(args.runs, request, folder)
        counts = {row: sum(c.method == row for c in manifest.clips) for row in manifest.rows()}
        checks = sum(c.kind == "attention" for c in manifest.clips)
        print(
            f"study {folder}: {len(manifest.clips)} clips ("
            + ", ".join(f"{k} {v}" for k, v in counts.items())
            + f", {checks} attention checks)"
        )
        print(f"serve it: bench study serve --study {folder}")
        return 0
    if args.study_command == "serve":
        from benchmark.study.server import serve

        serve(args.study, args.host, args.port)
        return 0
    from benchmark.study.report import FORMATS, render, study_report, write_study_report

    report = study_report(args.study, args.ci)
    print(render(report, "text"), end="")
    out = args.out or Path("reports") / f"study_{Path(args.study).resolve().name}.{FORMATS[args.format]}"
    print(f"wrote {write_study_report(report, args.format, out)}")
    return 0
