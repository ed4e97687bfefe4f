# amplimon — all set-up is done by these targets; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-out

.PHONY: install test check lint typecheck demo demo-offline bench clean browser audit-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# Debian's Chromium + ChromeDriver for the browser tests (root on the CI machine).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing chromium + chromium-driver (apt)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || { echo "cannot install chromium: browser tests will fail"; exit 1; }; \
	fi

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

check: lint typecheck

# Known vulnerabilities in the installed dependencies (PyPI advisory data via pip-audit).
# --strict: a dependency that cannot be audited fails the check instead of passing silently.
audit-deps: install
	$(BIN)/python -m pip install --quiet -e ".[audit]"
	$(BIN)/pip-audit --strict --progress-spinner off --skip-editable

test: install browser lint
	@set +e; $(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

demo: install
	$(BIN)/amplimon demo

demo-offline: install
	$(BIN)/amplimon demo --offline --out $(DEMO_DIR)

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
