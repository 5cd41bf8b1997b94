# The two commands a newcomer needs: `make run` and `make test` (`make lint`, then the tests).
# Both create .venv when it is missing and install gankit with the exact
# versions we test (constraints.txt); pyproject.toml holds the loose ranges.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CORE_STAMP := $(VENV)/.installed-core
STAMP := $(VENV)/.installed
RUN_DATA := data/breakout
# CPU threads: use every core the machine has.
export OMP_NUM_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: run test lint install clean bench

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# `make run` needs only gankit's own dependencies: the test extras took 24 s
# to install on their own here, and every second of its 10 minutes goes to
# training.  `make test` adds pytest and the notebook runner on top.
$(CORE_STAMP): $(PY) pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	touch $(CORE_STAMP)

$(STAMP): $(CORE_STAMP)
	$(PIP) install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The main job: collect Breakout frames once (cached under data/), then train
# the `breakout` preset on the CPU and print where the samples are.
run: $(CORE_STAMP)
	@if [ ! -f $(RUN_DATA)/manifest.json ]; then \
	  $(VENV)/bin/gankit data atari --game Breakout --frames 12000 --every 4 --policy agent --size 64 --out $(RUN_DATA); \
	fi
	$(VENV)/bin/gankit train --preset breakout --data $(RUN_DATA)

# Lint and import order (ruff) and type checks (mypy), configured in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/gankit

test: lint
	$(PY) -m pytest -q --durations=15 tests

bench: $(CORE_STAMP)
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
