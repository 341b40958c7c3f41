#!/usr/bin/env bash
# The checks that need a GPU, in one short run (about 10 minutes on one H100/H200):
#   bench/gpu_checks.sh [--dry-run] [OUT_DIR]   # default ./gpu-out; needs audioae in python3
# 1. tests/test_gpu.py (mixed-precision GAN training through audioae-train, CPU/GPU agreement),
# 2. training throughput of the full stable_audio_2_0_vae config at batch 8: audioae at fp32,
#    bf16 and bf16 + trainer.compile (steps/s, audio s/s, peak GPU memory, model FLOPs per step
#    and MFU over the H200's 989 TFLOPS dense bf16 peak), and stable-audio-tools' own trainer at
#    its default 16-mixed and at bf16-mixed (when SAT_PYTHON, default /tmp/satvenv/bin/python,
#    exists: docs/benchmarks.md "SAT's throwaway venv"),
# 3. chunked inference speed, 4. with SUITE=1, the whole test suite (the CLIs pick CUDA there;
#    3 more minutes, beyond the 10).
# Each part has its own time limit, so one failure still leaves the others' logs.
# --dry-run: the same commands on the CPU, tiny (smoke config, 2 steps, SAT at width 8 and
# fp32), in a minute or two: checks the script and its code paths, not the numbers.
set -u
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
OUT=${1:-gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SAT_PY=${SAT_PYTHON:-/tmp/satvenv/bin/python}
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
if [ $DRY = 1 ]; then
    export CUDA_VISIBLE_DEVICES=""
    CFG=smoke BATCH=2 STEPS=2 WARM=2 DEV=cpu SATPREC=32
    SATSIZE="--channels 8 --filters 4 --crop 8192"
    T=${DRY_LIMIT:-300}
else
    nvidia-smi -L
    CFG=sa2 BATCH=8 STEPS=10 WARM=3 DEV=cuda SATPREC=16-mixed,bf16-mixed
    SATSIZE="--channels 128 --filters 64 --crop 65536"  # stable_audio_2_0_vae in full
    T=0
fi
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
lim() { [ $T = 0 ] && echo "$1" || echo "$T"; }  # the GPU limit, or the dry run's
[ $DRY = 1 ] || part gpu_tests 130 $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
for precision in no bf16; do
    [ $DRY = 1 ] && [ $precision = bf16 ] && continue  # no bf16 autocast worth timing on a CPU
    part "train_${CFG}_$precision" "$(lim 90)" $PY bench/train_throughput.py --configs $CFG \
        --batch $BATCH --steps $STEPS --warmup $WARM --precision "$precision" --flops
done
# compile: the warm-up steps compile (a G and a D step, then the first steps of each again)
[ $DRY = 1 ] && CPREC=no || CPREC=bf16
part "train_${CFG}_${CPREC}_compile" "$(lim 240)" $PY bench/train_throughput.py --configs $CFG \
    --batch $BATCH --steps $STEPS --warmup 4 --precision $CPREC --compile --flops
if [ -x "$SAT_PY" ]; then
    part "sat_train_$CFG" "$(lim 120)" $PY bench/sat_compare.py --sat-throughput --device $DEV \
        --sat-python "$SAT_PY" --sat-precision $SATPREC --batch $BATCH --steps $STEPS \
        --warmup 4 $SATSIZE
else
    echo "== sat_train: skipped, no $SAT_PY (docs/benchmarks.md: SAT's throwaway venv)"
fi
[ $DRY = 1 ] && exit 0
part inference 75 $PY bench/inference.py --device cuda --seconds 30 120
[ "${SUITE:-0}" = 1 ] && OMP_NUM_THREADS=2 part suite 180 $PY -m pytest -q -p no:cacheprovider -n 8 -rf --tb=line --ignore=tests/test_gpu.py
