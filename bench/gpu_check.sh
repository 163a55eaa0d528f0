#!/usr/bin/env bash
# One prepared GPU benchmark for a GPU machine (e.g. H100/H200), from a fresh checkout, finishing within 9 minutes:
#   1. training it/s: SparseTemporalTrainer vs stock nnUNetTrainer on 3d_temporal_unet_s (same batch) and
#      SuperImageTrainer on si_f16t5, data loading in 8 background workers as nnU-Net does on GPU;
#   2. inference frames/s, the CPU table's workloads on CUDA: stock 2d, 3d_temporal_unet_s, 3d_temporal and
#      si_f16t5 on 1, 10 and 100 videos of 180 frames and one of 1,000 frames, through
#      nnUNetv2_predict --disable_tta and unilvseg predict-video (bench/bench_inference.py);
#   3. GPU memory: the peak of nvidia-smi's memory.used during each step (gpu_memory.json).
# It needs nothing from the network: it synthesises its own phantom data and uses the machine's torch (with
# CUDA). A bare CUDA image (Python 3.12, torch, timm, opencv, scikit-image, pandas, matplotlib) lacks
# nnunetv2 and a few of its dependencies: when nnunetv2 is missing, every wheel in $WHEELS (default
# bench_out/wheels, an ignored folder copied beside the checkout) is installed with
# `pip install --no-index --no-deps`. Prepare that folder where PyPI can be reached (about 55 MB, SimpleITK most):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d bench_out/wheels nnunetv2==2.8.1 dynamic-network-architectures batchgenerators batchgeneratorsv2 \
#     acvl-utils SimpleITK blosc2 ndindex numexpr fvcore iopath yacs termcolor connected-components-3d nibabel
# (pip prints the versions it took; keep one version of each). The script lists any module still missing
# and stops at once, so a failed try costs little device time. This repository is installed with
# `pip install --no-deps --no-build-isolation -e .` when possible, else used through PYTHONPATH.
#
# Run from the repository root:   OUT=/some/folder bash bench/gpu_check.sh
# Dry run of the same steps on CPU at tiny sizes (checks the script anywhere): DEVICE=cpu bash bench/gpu_check.sh
# Results: $OUT/training.json, $OUT/inference.json, $OUT/gpu_memory.json, $OUT/gpu_check.log, $OUT/nvidia_smi.txt,
# $OUT/logs.tar.gz. Then, on the development machine: copy them to bench_out/gpu/ and run
#   python bench/run_all.py --report-only     (adds the GPU section to BENCHMARKS.md)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench_out/gpu}"
WORK="${WORK:-/tmp/unilvseg_gpu_work}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
WHEELS="${WHEELS:-bench_out/wheels}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }

echo "== gpu_check $(date -u '+%Y-%m-%d %H:%M UTC') on $(hostname), python: $($PY --version 2>&1)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.txt" 2>&1; cat "$OUT/nvidia_smi.txt"
if [ "$DEVICE" = cpu ]; then
    SIZES=(--small); TRAIN=(--iterations 2 --warmup 1 --n-proc-da 1); INFER=(--counts 1,2 --long-frames 60)
    echo "== DRY RUN on CPU, tiny sizes"
else
    SIZES=(); TRAIN=(--configuration 3d_temporal_unet_s --iterations 30 --warmup 5 --n-proc-da 8)
    INFER=(--counts 1,100,10 --frames 180 --long-frames 1000 --procs 6)
    if ! $PY -c "import torch, sys; print('torch', torch.__version__, 'cuda', torch.cuda.is_available()); sys.exit(not torch.cuda.is_available())"; then
        echo "FATAL: no torch with CUDA under $PY"; exit 2
    fi
fi
if ! $PY -c "import nnunetv2" 2>/dev/null; then
    if [ -d "$WHEELS" ]; then
        echo "== installing the wheels of $WHEELS (no index, no dependency resolution)"
        $PY -m pip install -q --no-index --no-deps "$WHEELS"/*.whl || true
    fi
    $PY -c "import nnunetv2" || { echo "FATAL: nnunetv2 not importable and no usable wheels in $WHEELS"; exit 2; }
fi
if [ "$DEVICE" != cpu ]; then  # the dry run leaves the local environment alone
    $PY -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 && echo "installed this repository (editable)" \
        || echo "pip install -e . failed: using PYTHONPATH"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export nnUNet_compile=f
missing=$($PY - <<'EOF'
import importlib.util
mods = ["nnunetv2", "dynamic_network_architectures", "batchgenerators", "batchgeneratorsv2", "acvl_utils", "blosc2",
        "SimpleITK", "cv2", "fvcore", "timm", "skimage", "matplotlib"]
print(" ".join(m for m in mods if importlib.util.find_spec(m) is None))
EOF
)
[ -n "$missing" ] && { echo "FATAL: missing modules: $missing"; exit 2; }
echo "== environment ready after $(elapsed) s"

# peak GPU memory (MiB, all processes) while a step runs: sampled by nvidia-smi every 200 ms
sampler=""
start_sampling() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu_memory_$1.csv" 2>/dev/null &
                   sampler=$!; }
stop_sampling() { if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; fi; sampler=""
                  sort -n "$OUT/gpu_memory_$1.csv" 2>/dev/null | tail -1; rm -f "$OUT/gpu_memory_$1.csv"; }

status=0
echo "== training (limit 170 s)"
start_sampling training
timeout 170 $PY bench/bench_training.py --device "$DEVICE" ${SIZES[@]+"${SIZES[@]}"} "${TRAIN[@]}" --workdir "$WORK" --out "$OUT" \
    || { echo "training bench failed or timed out ($?)"; status=1; }
train_peak=$(stop_sampling training)
echo "== after $(elapsed) s; peak GPU memory in training: ${train_peak:-n/a} MiB"
limit=$(( 520 - $(elapsed) ))
echo "== inference (limit $limit s; results are saved after every run, so a cut run keeps what it measured)"
start_sampling inference
timeout "$limit" $PY bench/bench_inference.py --device "$DEVICE" ${SIZES[@]+"${SIZES[@]}"} ${INFER[@]+"${INFER[@]}"} --workdir "$WORK" \
    --out "$OUT" || { echo "inference bench failed or timed out ($?)"; status=1; }
infer_peak=$(stop_sampling inference)
echo "{\"training_peak_mib\": ${train_peak:-null}, \"inference_peak_mib\": ${infer_peak:-null}}" > "$OUT/gpu_memory.json"
tar czf "$OUT/logs.tar.gz" -C "$WORK" logs 2>/dev/null  # the logs as one file
echo "== gpu_check done in $(elapsed) s, status $status; peak GPU memory in inference: ${infer_peak:-n/a} MiB"
exit $status
