#!/usr/bin/env bash
# One prepared GPU session, run on the device machine from the repository root:
#   1. trains the default's recipe at 256 px (training/configs/horse2zebra_gpu.yaml), grown from
#      models/horse2zebra, for MINUTES minutes;
#   2. packages the generators (fp16 weights) into $OUT/package, with the training log;
#   3. with minutes left (CHECKS=1), runs the gpu tests and compile.gpu_benchmark into $OUT.
# Back here: `python -m training evaluate --package <files_at>/package --data DIR`, and it becomes
# models/horse2zebra if it scores better (README, "Training on a borrowed GPU").
#
# Prepare here first: `make gpu-bundle` (.gpu/: the packed train folders, and wheels of what the
# device lacks). Then: run(command="OUT=$OUT MINUTES=7 bash training/tools/gpu_session.sh",
# carry=[".gpu"], timeout_s=600).
#
# The same script runs on a CPU for its test: PYTHON, DATA, CONFIG, INIT_FROM, TRAIN_FLAGS and
# CHECKS override the defaults.
set -euo pipefail

: "${OUT:?set OUT to the folder whose files come back}"
MINUTES=${MINUTES:-7}
PYTHON=${PYTHON:-python3}
BUNDLE=${BUNDLE:-.gpu}
DATA=${DATA:-$BUNDLE/data}
CONFIG=${CONFIG:-training/configs/horse2zebra_gpu.yaml}
INIT_FROM=${INIT_FROM:-models/horse2zebra}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
CHECKS=${CHECKS:-1}
RUN=${RUN:-$(mktemp -d)/run}
export PYTHONUNBUFFERED=1

if compgen -G "$BUNDLE/wheels/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$BUNDLE"/wheels/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true

# shellcheck disable=SC2086  # TRAIN_FLAGS is a list of flags
"$PYTHON" -m training train --data "$DATA" --out "$RUN" --config "$CONFIG" \
  --init-from "$INIT_FROM" --max-minutes "$MINUTES" $TRAIN_FLAGS 2>&1 | tee "$OUT/train.log"
"$PYTHON" -m training package --run "$RUN" --out "$OUT/package" --fp16-weights

if [ "$CHECKS" = 1 ]; then
  # The files with gpu tests by name: collecting the rest would import the service's packages.
  "$PYTHON" -m pytest -m gpu -p no:cacheprovider -q tests/cyclegan/test_backends.py \
    tests/compile/test_gpu_benchmark.py tests/compile/test_tensorrt_build.py 2>&1 \
    | tee "$OUT/gpu-tests.log" || true
  "$PYTHON" -m compile.gpu_benchmark --package "$OUT/package" --out "$OUT/BENCHMARKS-gpu.md" \
    2>&1 | tee "$OUT/gpu-benchmark.log" || true
fi
ls -l "$OUT" "$OUT/package"
