# sar_plugin: the two commands are `make demo` and `make test`.
# Everything else here is the set-up they share.
#
#   make test  WHEELHOUSE=../shared/wheels   # prefer a prebuilt mmcv wheel
#   make demo                                 # builds mmcv from source if needed
#
# WHEELHOUSE is passed to pip as --find-links (never via PIP_FIND_LINKS, which
# would replace the machine's own wheel links).

PYTHON     ?= python3.11
VENV       ?= .venv
WHEELHOUSE ?=
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
FIND_LINKS := $(if $(WHEELHOUSE),--find-links $(abspath $(WHEELHOUSE)),)
STAMP      := $(VENV)/.sar_plugin_installed
PYTEST_ARGS ?=

TORCH_SPEC  ?= torch==2.13.0
MMCV_SPEC   ?= mmcv==2.1.0

.PHONY: all env test demo clean distclean benchmark

all: test

env: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# One stamp for the whole stack; it depends on pyproject.toml so that a change of the
# declared dependencies re-runs the (idempotent, already-satisfied-skipping) install.
$(STAMP): $(PY) pyproject.toml
	$(PIP) install $(FIND_LINKS) '$(TORCH_SPEC)' 'setuptools<82' wheel ninja
	$(PIP) install $(FIND_LINKS) 'mmengine==0.10.7'
	@if $(PY) -c "import mmcv, mmcv.ops" >/dev/null 2>&1; then \
	    echo "mmcv with ops already installed"; \
	else \
	    echo "installing $(MMCV_SPEC) with ops (prebuilt wheel if offered, else a ~25 min source build)"; \
	    MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install $(FIND_LINKS) --no-build-isolation '$(MMCV_SPEC)'; \
	fi
	$(PIP) install $(FIND_LINKS) 'mmsegmentation==1.2.2' ftfy regex opencv-python
	$(PIP) install $(FIND_LINKS) --no-build-isolation -e '.[test]'
	$(PY) -c "import mmcv.ops, sar_plugin; from mmseg.registry import MODELS; MODELS.get('SARHead'); MODELS.get('SARLoss')"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) tools/demo.py --work-dir work_dirs/demo

benchmark: $(STAMP)
	$(PY) tools/benchmark_losses.py

clean:
	rm -rf work_dirs build *.egg-info .pytest_cache

distclean: clean
	rm -rf $(VENV)
