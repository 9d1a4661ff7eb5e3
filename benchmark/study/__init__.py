"""The human realness study of Diffused Heads (Table 2) as a tool: `bench study create | serve | report`.

- :mod:`~benchmark.study.manifest`: the study folder and its manifest (which opaque token is which clip);
- :mod:`~benchmark.study.create`: clips from finished runs, balanced over speakers and methods, attention checks;
- :mod:`~benchmark.study.store`: votes in SQLite (WAL), rater secrets, the next clip from the stored votes;
- :mod:`~benchmark.study.server`: the rating page (Starlette + uvicorn; imported only by `serve`);
- :mod:`~benchmark.study.stats`: Wilson intervals, Fleiss' kappa, mean opinion scores with t-intervals;
- :mod:`~benchmark.study.report`: the votes as Table 2, in the leaderboard's formats.

docs/study.md describes the study and its security properties.
"""
