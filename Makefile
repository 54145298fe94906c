# Two commands do all the set-up on a fresh machine:
#   make certify   run the certification campaign on the simulated bench (results/latest/)
#   make test      run the project's own tests
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ALLURE := tools/allure/node_modules/.bin/allure

.PHONY: certify test lint sim bench matrix kill-sweep clean allure chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Allure 3 command line (npm, no Java) renders the HTML report; without npm the run still writes
# allure-results and says how to render them.
allure: $(ALLURE)

$(ALLURE): tools/allure/package.json tools/allure/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tools/allure --no-audit --no-fund --loglevel=error && touch $(ALLURE) || \
		echo "npm could not install Allure: the report stays as allure-results (see README)"; \
	else echo "npm not found: the report stays as allure-results (see README)"; fi

# Debian's Chromium, for the test that opens the rendered report headless.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; } || \
		echo "could not install chromium: the report screenshot test will say so"; }

certify: $(STAMP) allure
	$(PY) -m rig certify

test: $(STAMP) allure chromium
	$(PY) -m pytest tests -q -n 2 --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check rig fixtures suites tests bench

sim: $(STAMP)
	$(PY) -m rig sim

matrix: $(STAMP)
	$(PY) -m rig.matrix

bench: $(STAMP)
	$(PY) bench/clock_roundtrip.py

# A year unattended on the twin (outside CI; tests/test_soak.py runs 90 days): prints events, memory, wall time
.PHONY: soak
soak: $(STAMP)
	$(PY) -m rig.soak --days 365

# `rig certify` killed at random moments (Ctrl-C, SIGTERM, SIGKILL), then resumed: prints its wall time and
# kills / results lost / orphans left (zeros promised). KILLS=30 by default; CI runs a short version.
KILLS ?= 30
kill-sweep: $(STAMP)
	$(PY) bench/kill_sweep.py --kills $(KILLS)

clean:
	rm -rf $(VENV) results tools/allure/node_modules

# Bad profiles, fuzzed lines to every twin port, injected instrument faults and random kills: one table
# (tried, handled, escaped, results lost, orphans left; zeros promised) and its wall time. Outside CI.
.PHONY: faults
faults: $(STAMP)
	$(PY) bench/faults.py
