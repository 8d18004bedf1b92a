# mmsimclr: `make demo` (set up + run the main job), `make test` (set up + run the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmsimclr-installed
# CIFAR-10 for the demo: an image folder (train/<class>/*, test/<class>/*) or cifar10-jpeg.tar.gz (unpacked by
# tools/demo.py into work_dirs/); the shared copy is used when present, otherwise CIFAR-10 is downloaded
DATA ?= $(wildcard ../shared/data/cifar10-jpeg.tar.gz)

.PHONY: setup test test-fast demo clean

setup: $(STAMP)

$(STAMP): setup.py setup.cfg requirements/runtime.txt requirements/torch.txt requirements/tests.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/torch.txt
	$(PY) -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

test: setup
	$(PY) -m pytest -q tests

test-fast: setup
	$(PY) -m pytest -q tests -m "not slow"

demo: setup
	$(PY) tools/demo.py $(if $(DATA),--data $(DATA))

clean:
	rm -rf $(VENV) work_dirs
