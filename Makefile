# Two commands do everything on a fresh machine:
#   make serve   install, train the quick router if none exists, serve it on http://127.0.0.1:8000
#   make test    install, lint, type-check and run the test suite (what CI runs)
# CPU-only machines elsewhere: make serve TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=

.PHONY: serve test install lint

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulled in by another package is a multi-GB CUDA build
	$(PIP) install --quiet torch==$(TORCH_VERSION) $(TORCH_INDEX)
	$(PIP) install --quiet -e '.[train,dev]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/huying up

lint: install
	$(VENV)/bin/ruff check model training serving tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest
