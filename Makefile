# amplimon — all set-up is done by these targets; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-out

.PHONY: install test check lint typecheck demo demo-offline bench clean browser audit-deps lock screenshots secrets

# Reproducible: every package (pip, setuptools and wheel included) comes from requirements.lock,
# pinned with hashes; the project itself is installed without resolving anything.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
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
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: install
	$(BIN)/mypy

check: lint typecheck

# Known vulnerabilities in the installed dependencies (PyPI advisory data via pip-audit).
# --strict: a dependency that cannot be audited fails the check instead of passing silently.
audit-deps: install
	$(BIN)/pip-audit --strict --progress-spinner off --skip-editable

# make test must leave the working tree as it found it: compared before and after.
test: install browser lint typecheck
	@before=$$(git status --porcelain 2>/dev/null); set +e; \
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadgroup; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	after=$$(git status --porcelain 2>/dev/null); \
	if [ "$$before" != "$$after" ]; then \
	  echo "make test changed the working tree:"; diff <(echo "$$before") <(echo "$$after"); exit 1; fi; \
	exit $$rc

# Refresh the README's screenshots on purpose (make test writes them to a temporary folder).
screenshots: install browser
	AMPLIMON_SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider \
	  tests/dashboard/test_browser.py tests/monitor/app/audit/test_report.py

demo: install
	$(BIN)/amplimon demo

demo-offline: install
	$(BIN)/amplimon demo --offline --out $(DEMO_DIR)

bench: install
	$(BIN)/python benchmarks/run_all.py

# Keys, passwords, CA and certificates of the compose stack, only those missing
# (deploy/make_secrets.py; KAFKA_ADVERTISED_HOST from .env); never in git.  docs/live.md.
secrets: install
	$(BIN)/python deploy/make_secrets.py init

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache

# Re-resolve the locks (newest releases today) after a change to pyproject.toml's dependencies;
# then run make test on a fresh clone before committing them.
LOCK_FLAGS := --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	--custom-compile-command "make lock" -q
lock:
	@test -x .lock-venv/bin/uv || { $(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet "uv>=0.13"; }
	.lock-venv/bin/uv pip compile pyproject.toml requirements/build.in --all-extras $(LOCK_FLAGS) \
	  -o requirements.lock
	.lock-venv/bin/uv pip compile pyproject.toml requirements/build.in -c requirements.lock $(LOCK_FLAGS) \
	  -o deploy/requirements-runtime.lock
