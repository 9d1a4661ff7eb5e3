# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test slow rehearsal perf clean

$(BIN)/bench: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	# constraints.txt pins the CPU torch build; a GPU user can pass their own constraints file instead
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

setup: $(BIN)/bench

demo: setup
	$(BIN)/bench run --model wav2lip --dataset synthetic --preset tiny
	$(BIN)/bench run --model wav2lip --dataset synthetic --preset tiny run.train=false run.name=wav2lip_untrained
	$(BIN)/bench run --model static --dataset synthetic --preset tiny
	$(BIN)/bench leaderboard --dataset synthetic --format markdown

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q -m "not slow and not rehearsal"

slow: setup
	$(BIN)/pytest -q -m slow

rehearsal: setup
	$(BIN)/pytest -q -m rehearsal

perf: setup
	$(BIN)/bench perf

clean:
	rm -rf $(VENV) runs reports/leaderboard_* reports/perf.json
