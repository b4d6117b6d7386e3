# omnipianist — two commands on a fresh machine:
#   make demo   create .venv, install the pinned dependencies, run the main job
#   make test   same set-up, then the whole test suite (in a private network namespace)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.omnipianist-installed
PYTEST_ARGS ?=

.PHONY: all setup render-deps demo check test test-fast bench lock lint clean
all: test

setup: $(STAMP)

$(STAMP): requirements.lock setup.py setup.cfg package.xml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@touch $@

demo: setup render-deps
	$(VENV)/bin/omnipianist demo

# Offscreen rendering for the demo's MP4 (MuJoCo over EGL, Mesa's software rasteriser on machines
# without a GPU). Best effort: installs Debian's packages when they are missing and apt is usable;
# without them the demo says so and skips the video.
render-deps:
	@if ldconfig -p | grep -q 'libEGL.so.1' && ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    libegl1 libgl1-mesa-dri libosmesa6 >/dev/null) || echo "render-deps: could not install EGL/OSMesa; the demo will skip the video"; \
	else echo "render-deps: libEGL/Mesa missing and apt not usable; the demo will skip the video"; fi

# Static checks: ruff (lint), import-linter (the layer contracts in .importlinter), mypy (mypy.ini).
check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy --no-incremental

# The static checks, then the whole suite, slow tier included, inside a private network namespace
# with only loopback up.
test: check
	tests/isolated.sh $(PY) -m pytest $(PYTEST_ARGS)

# The static checks and everything but the slow tier.
test-fast: check
	tests/isolated.sh $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/omnipianist bench sim --json

# Re-resolve requirements.txt into requirements.lock (needs the package registries).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -r requirements.txt
	.venv-lock/bin/pip freeze --all | $(PYTHON) .ci/lock_filter.py > requirements.lock
	rm -rf .venv-lock

lint: check

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
