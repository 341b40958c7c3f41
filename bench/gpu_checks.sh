#!/usr/bin/env bash
# The checks that need a GPU, in one short run (a few minutes on one H100/H200):
#   bench/gpu_checks.sh [OUT_DIR]      # default ./gpu-out; needs audioae installed in python3
# 1. tests/test_gpu.py (mixed-precision GAN training through audioae-train, CPU/GPU agreement),
# 2. training throughput of the SA 2.0 config at fp32 and bf16, and chunked inference speed,
# 3. the whole test suite on the GPU machine (the CLIs pick CUDA there).
# Each part has its own time limit, so one failure still leaves the others' logs.
set -u
OUT=${1:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
part() {  # part NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$OUT/$name.log"
    echo "== $name: exit $rc in $((SECONDS - start)) s"
}
nvidia-smi -L
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
part gpu_tests 130 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
for precision in no bf16; do
    part "train_sa2_$precision" 90 $PY bench/train_throughput.py --configs sa2 --batch 8 \
        --steps 10 --warmup 3 --precision "$precision"
done
part inference 75 $PY bench/inference.py --device cuda --seconds 30 120
OMP_NUM_THREADS=2 part suite 180 $PY -m pytest -q -p no:cacheprovider -n 8 -rf --tb=line --ignore=tests/test_gpu.py
