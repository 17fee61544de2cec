# suanli developer entry points. `make run` and `make test` work on a bare machine:
# they create .venv and install the package into it first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run report test lint bench clean install

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# the main job: API + scheduler loop + local executor on SQLite, the bundled demo fleet as
# simulated devices, ten sample jobs; Ctrl-C stops it (ARGS=--exit-when-idle to stop by itself)
run: $(STAMP)
	$(BIN)/suanli up $(ARGS)

# the offline report: metering, estimates and a scheduling simulation in out/report.html
report: $(STAMP)
	$(BIN)/suanli demo --out out

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
