# sar_plugin: the two commands are `make demo` and `make test`.
# Everything else here is the set-up they share.
#
#   make test  WHEELHOUSE=../shared/wheels   # prefer a prebuilt mmcv wheel
#   make demo                                 # builds mmcv from source if needed
#   make test-fast   # the loss, anchor, head and kernel tests without the
#                    # slow ones (tests/slow_tests.txt): about a minute on
#                    # 2 cores, for iterating; `make test` runs everything
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

.PHONY: all env test test-fast demo clean distclean benchmark camvid-heldout family-demo

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

# The loss, anchor-loss, head and kernel tests minus those marked slow
# (two-process gloo checks, toy optimisations; tests/slow_tests.txt, marked
# by tests/conftest.py). Not a substitute for `make test` (CI runs that).
FAST_TESTS := tests/test_losses_fast.py tests/test_anchor_losses.py \
    tests/test_sar_loss.py tests/test_sar_head.py tests/test_properties.py \
    tests/test_seg_losses.py tests/test_loss_config_types.py
test-fast: $(STAMP)
	$(PY) -m pytest $(FAST_TESTS) -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) tools/demo.py --work-dir work_dirs/demo

# The README's performance tables (benchmarks/run.py). The committed ones
# in docs/results/benchmark/ are `make benchmark BENCH_OUT=docs/results/benchmark`
# on an otherwise idle machine.
BENCH_OUT ?= work_dirs/benchmark
benchmark: $(STAMP)
	$(PY) benchmarks/run.py --out $(BENCH_OUT)/loss.json loss
	$(PY) benchmarks/run.py --out $(BENCH_OUT)/train_demo.json train configs/demo/sar_fcn_r18s-d8_1xb8-1500i_synthetic-128x128.py --rounds 60 --warmup 6
	$(PY) benchmarks/run.py --out $(BENCH_OUT)/train_camvid.json train configs/camvid/sar_fcn_m-v2-d8_1xb4-4k_camvid-180x240.py --rounds 20 --warmup 3
	$(PY) benchmarks/run.py --out $(BENCH_OUT)/train_cityscapes.json train configs/cityscapes/sar_deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024.py --size 256 512 --rounds 12 --warmup 2

# The README's CamVid table: CE, class-weighted CE and SAR x 3 seeds on the
# held-out protocol (configs/camvid/heldout/, docs/configs.md), 1k iterations
# each, 2 runs at once x 1 thread (about 100 minutes on 2 cores), the final
# checkpoints evaluated on the held-out video (test) and on val (tuning);
# writes work_dirs/camvid_heldout/results.json and report/.
CAMVID       ?= data/camvid
CAMVID_SEEDS ?= 0 1 2
CAMVID_ITERS ?= 1000
SWEEP_ARGS   ?=
HELDOUT      := configs/camvid/heldout
# The anchor-loss family on the demo (README): a weight grid on val, then the
# chosen weights at 3 seeds on the held-out test split; 31 runs of ~3 min on
# 2 cores. SWEEP_ARGS=--report-only: the tables again from the runs there are.
family-demo: $(STAMP)
	PYTHON=$(PY) SWEEP_ARGS="$(SWEEP_ARGS)" bash docs/results/family_demo/run.sh work_dirs/family_demo
camvid-heldout: $(STAMP)
	$(PY) tools/sweep.py $(HELDOUT)/fcn_m-v2-d8_1xb4-4k_camvid-180x240-heldout.py \
	    $(HELDOUT)/wce_fcn_m-v2-d8_1xb4-4k_camvid-180x240-heldout.py \
	    $(HELDOUT)/sar_fcn_m-v2-d8_1xb4-4k_camvid-180x240-heldout.py \
	    --names ce wce sar --seeds $(CAMVID_SEEDS) --work-dir work_dirs/camvid_heldout \
	    --jobs 2 --threads 1 \
	    --cfg-options train_dataloader.dataset.data_root=$(CAMVID) \
	        val_dataloader.dataset.data_root=$(CAMVID) test_dataloader.dataset.data_root=$(CAMVID) \
	        train_cfg.max_iters=$(CAMVID_ITERS) param_scheduler.1.end=$(CAMVID_ITERS) \
	        train_cfg.val_interval=$(CAMVID_ITERS) default_hooks.checkpoint.interval=500 \
	    --splits test val \
	    --split-options val:test_dataloader.dataset.data_prefix.img_path=img_dir/val \
	        val:test_dataloader.dataset.data_prefix.seg_map_path=ann_dir/val \
	        val:test_dataloader.dataset.sequences=None $(SWEEP_ARGS)

clean:
	rm -rf work_dirs build *.egg-info .pytest_cache

distclean: clean
	rm -rf $(VENV)
