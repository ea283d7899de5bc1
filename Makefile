# The two front-door commands: `make run` (the demo store) and `make test` (the suite).
# Both create or refresh the virtual environment first; nothing needs installing by hand.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export DEEPSHELF_DATA_DIR ?= $(abspath ../shared/data)
export OPENBLAS_NUM_THREADS ?= 1
# `make run PORT=8080` serves the demo on another port (default 8000)
PORT ?= 8000

.PHONY: install run test reset clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned: the machine has this CPU wheel; an unpinned torch pulls a multi-GB CUDA build
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/deepshelf demo --port $(PORT)

test: install
	$(PY) -m pytest

# Start the demo over: its trained runs and its store (every product and event added while trying it) go; the
# virtual environment stays, so the next `make run` retrains without reinstalling.
reset:
	rm -rf runs/demo

# Everything built here, the virtual environment included.
clean:
	rm -rf $(VENV) runs .pytest_cache
