# Two commands do all the set-up on a fresh machine:
#   make certify   run the certification campaign on the simulated bench (results/latest/)
#   make test      run the project's own tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: certify test lint sim bench matrix clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

certify: $(STAMP)
	$(PY) -m rig certify

test: $(STAMP)
	$(PY) -m pytest tests -q

lint: $(STAMP)
	$(PY) -m ruff check rig fixtures suites tests bench

sim: $(STAMP)
	$(PY) -m rig sim

matrix: $(STAMP)
	$(PY) -m rig.matrix

bench: $(STAMP)
	$(PY) bench/clock_roundtrip.py

clean:
	rm -rf $(VENV) results
