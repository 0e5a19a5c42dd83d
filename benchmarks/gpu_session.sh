#!/usr/bin/env bash
# The GPU measurements of docs/performance.md in one run on a lent CUDA machine (no internet there):
# SAM AMG seconds per image (benchmarks/sam_gpu.py: vit_b and vit_h, stock AMG vs the engine, fp32 vs
# bf16, masks compared) and the paper's eight models' seconds per training iteration at their official
# per-GPU batch (benchmarks/training_speed.py). Each part has its own time limit so one slow part cannot
# starve the other; every line goes to $OUT as well.
#
# Prepare on a machine with the package index (wheels for the GPU machine's Python 3.12; the versions of
# pyproject.toml), and the images (not committed: .gpu/ is git-ignored locally):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
#     segment-anything==1.0 pycocotools==2.0.11 mmengine==0.10.7 mmsegmentation==1.2.2 mmcv-lite==2.1.0 \
#     addict ftfy prettytable termcolor wcwidth yapf platformdirs
#   mkdir .gpu && cp <an iSAID 800 px patch> <a ~1024 px crop> .gpu/
# Run there with .whl and .gpu carried:   bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch, mmseg, mmengine, segment_anything; print('torch', torch.__version__, 'mmseg', mmseg.__version__)" | tee -a "$OUT/device.txt"
timeout "${SAM_LIMIT:-270}" python3 benchmarks/sam_gpu.py --images .gpu/*.png --models vit_b vit_h \
    --points-per-side 32 --repeats "${SAM_REPEATS:-2}" --json "$OUT/sam_gpu.json" 2>&1 | tee "$OUT/sam_gpu.log"
echo "sam_gpu exit ${PIPESTATUS[0]}"
timeout "${TRAIN_LIMIT:-230}" python3 benchmarks/training_speed.py --device cuda --models paper \
    --precisions fp32 --iters "${TRAIN_ITERS:-25}" --warmup 10 --workers 4 2>&1 \
    | grep -v -E "^\s*$|Build settings|CUDA_FLAGS" > "$OUT/training_speed.log"
echo "training_speed exit ${PIPESTATUS[0]}"
grep -E "s/iter|Error|error" "$OUT/training_speed.log" | tail -40
