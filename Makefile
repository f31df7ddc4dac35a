# Two commands do everything on a fresh machine:
#   make serve   install, train the quick router if none exists, serve it on http://127.0.0.1:8000
#   make test    install, lint, type-check and run the test suite (what CI runs)
# CPU-only machines elsewhere: make serve TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"

VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_VERSION := 2.13.0
TORCH_INDEX ?=

.PHONY: serve test install lint services

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch pulled in by another package is a multi-GB CUDA build
	$(PIP) install --quiet torch==$(TORCH_VERSION) $(TORCH_INDEX)
	$(PIP) install --quiet -e '.[train,dev,bulk]'
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/huying up

lint: install
	$(VENV)/bin/ruff check model training serving cli tests benchmarks
	$(VENV)/bin/mypy

# What the tests talk to: Debian's Chromium for the officer-page test (never a downloaded browser)
# and the local PostgreSQL server. Without root or apt these tests skip, unless CI is set.
# The CJK font is checked on its own: a machine may have Chromium already but no Chinese font.
services:
	@{ command -v chromium >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; } || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null); } || \
		echo "chromium or a CJK font could not be installed: without chromium the officer-page browser test skips, without the font its screenshot shows boxes"
	@command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start 2>/dev/null; true

test: lint services
	$(PY) -m pytest
