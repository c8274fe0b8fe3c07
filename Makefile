# The two commands a new machine needs: `make demo` and `make test`. Each does its own set-up.
# CPU machines get torch==2.13.0 (a local CPU wheel here); on a CUDA machine run
# `make setup GPU=1` (or any target with GPU=1) to add the `gpu` extra.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CHARACTER := $(VENV)/bin/character
EXTRAS := dev$(if $(GPU),$(comma)gpu,)
comma := ,
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)$(if $(GPU),-gpu,)
PYTEST_ARGS ?=

.PHONY: setup browser models test demo lint fmt bench smoke clean

setup: $(STAMP)

# Headless Chromium and its driver from Debian's packages, for the Studio's real-browser test
# (selenium never downloads a browser or driver here). Installed only when missing, and only for
# `make test`: the demo and the package itself do not need a browser.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "the Studio browser test needs chromium and chromium-driver: run as root: apt-get install -y chromium chromium-driver" >&2; exit 1; fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned, so nothing later can drag in the CUDA wheels on a CPU machine.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*
	touch $@

models: setup
	$(CHARACTER) models prepare

test: models browser
	$(PY) -m pytest -q --durations=15 $(PYTEST_ARGS)

demo: models
	$(CHARACTER) pipeline remorseful --scale demo --smoke none

smoke: models
	$(CHARACTER) pipeline remorseful --scale smoke

lint: setup
	$(VENV)/bin/ruff check character tests bench scripts
	$(VENV)/bin/ruff format --check character tests bench scripts
	$(VENV)/bin/mypy

fmt: setup
	$(VENV)/bin/ruff format character tests bench scripts
	$(VENV)/bin/ruff check --fix character tests bench scripts

bench: models
	$(PY) bench/generation.py
	$(PY) bench/filters.py
	$(PY) bench/smoke.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
