# mmsimclr: `make demo` (set up + run the main job), `make test` (set up + run the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mmsimclr-installed
# CIFAR-10 for the demo: an image folder (train/<class>/*, test/<class>/*) or cifar10-jpeg.tar.gz (unpacked by
# tools/demo.py into work_dirs/); the shared copy is used when present, otherwise CIFAR-10 is downloaded
DATA ?= $(wildcard ../shared/data/cifar10-jpeg.tar.gz)

# A second environment for the numpy-1 line: numpy 1.26 in its own venv, everything else taken from $(VENV)
# (wheels built against numpy 2 run on numpy 1.x); the checkpoint tests run in both
NP1_VENV ?= .venv-numpy1
NP1_PY := $(NP1_VENV)/bin/python
NP1_STAMP := $(NP1_VENV)/.mmsimclr-installed
# pytest-xdist workers for make test / test-fast (the CI machine has 2 cores); the tests that start process groups
# run one at a time on one of them (tests/conftest.py)
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadgroup

.PHONY: setup setup-numpy1 test test-fast test-numpy1 demo docs clean

setup: $(STAMP)

setup-numpy1: $(NP1_STAMP)

$(NP1_STAMP): $(STAMP)
	$(PYTHON) -m venv $(NP1_VENV)
	$(NP1_PY) -m pip install -q numpy==1.26.4
	echo "import site; site.addsitedir('$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")')" \
		> "$$($(NP1_PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/mmsimclr_base_venv.pth"
	touch $@

$(STAMP): setup.py setup.cfg requirements/runtime.txt requirements/torch.txt requirements/tests.txt requirements/docs.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/torch.txt
	$(PY) -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt -r requirements/docs.txt
	$(PY) -m pip install -q --no-deps -e .
	# mmengine's config imports yapf, which writes its grammar cache (~/.cache/YAPF) on the first import after an
	# install; two pytest-xdist workers doing that at once can read a half-written pickle (EOFError): write it now
	$(PY) -c "import mmengine.config"
	touch $@

test: setup setup-numpy1
	$(PY) -m pytest -q $(XDIST) tests
	$(NP1_PY) -m pytest -q -m checkpoint tests

test-numpy1: setup-numpy1
	$(NP1_PY) -m pytest -q -m checkpoint tests

test-fast: setup
	$(PY) -m pytest -q $(XDIST) tests -m "not slow"

# the site (docs/en, MyST Markdown) into docs/en/_build/html; warnings are errors, among them links to a page, anchor
# or repository file that does not exist (no network needed); make test builds it too (tests/test_docs)
docs: setup
	$(PY) -m sphinx -E -W --keep-going -q -b html docs/en docs/en/_build/html

demo: setup
	$(PY) tools/demo.py $(if $(DATA),--data $(DATA))

clean:
	rm -rf $(VENV) $(NP1_VENV) work_dirs docs/en/_build
