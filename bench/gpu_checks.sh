#!/usr/bin/env bash
# Issue 33's GPU run, in one command on a lent GPU machine (no network; the kit of
# bench/gpu_kit.py prepare carried beside the repository: bench/README.md, "The GPU kit"):
#   bench/gpu_checks.sh [--dry-run] [--parts LIST] [OUT_DIR]      # OUT_DIR default ./gpu-out
# Parts (LIST: comma-separated, default setup,speed,profile,quality,tests), each under its own
# time limit, each writing OUT_DIR/PART.log:
#   setup    pip install --no-index --no-deps --target the kit's wheels (bench/gpu_kit.py
#            install: DIR/site for audioae, DIR/sat ahead of it for stable-audio-tools), then
#            `gpu_kit.py check --installed`: every requirement against the versions really there
#   speed    the full stable_audio_2_0_vae config at batch 8: audioae at bf16 and bf16 +
#            trainer.compile (steps/s, audio s/s, peak memory, FLOPs/step, MFU), and
#            stable-audio-tools' own trainer at 16-mixed and bf16-mixed (sat_compare.py)
#   profile  torch.profiler's top kernels of audioae's bf16 step (bench/gpu_profile.py)
#   quality  `recipe` and `sat_recipe` trained side by side at batch 8 for the same wall time,
#            then evaluated per category on the kit's data/test (bench/gpu_quality.py): gets
#            what is left of DEADLINE (default 520 s from the start) after the parts before it;
#            the GPU tests (tests/test_gpu.py) run during its training
#   tests    tests/test_gpu.py alone (when quality is not among the parts)
#   inference, suite   optional: chunked inference speed; the whole suite (SUITE=1 as before)
# OUT_DIR ends with at most 7 files: the logs, quality.png and results.json (every part's exit
# and time, every table the logs printed, quality.json's points), rewritten after each part.
# --dry-run: every part on the CPU at toy size, installing the same wheels where this Python
# can (cp312 binary wheels cannot: this interpreter's own packages stand in, as setup.log says),
# so that a broken kit shows here; about 6 minutes on 2 cores. DRY_COMPILE=1 adds the compile
# step (about 4 more minutes).
set -u
DRY=0
PARTS=setup,speed,profile,quality,tests
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY=1; shift ;;
        --parts) PARTS=$2; shift 2 ;;
        *) break ;;
    esac
done
OUT=$(mkdir -p "${1:-gpu-out}" && cd "${1:-gpu-out}" && pwd)
cd "$(dirname "$0")/.."
KIT=${GPU_KIT:-bench/cache/gpu_kit}
WORK=${GPU_WORK:-/tmp/audioae-gpu}
DEADLINE=${DEADLINE:-520}
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
: >"$OUT/parts.tsv"
has() { [[ ",$PARTS," == *",$1,"* ]]; }
note() { printf '#\t%s\t%s\n' "$1" "$2" >>"$OUT/parts.tsv"; }
results() { $PY bench/gpu_results.py "$OUT" "$WORK/quality/quality.json"; }
part() {  # part NAME LOG SECONDS COMMAND...: appends to OUT/LOG.log, records its exit and time
    local name=$1 log=$2 limit=$(($3 * SLOW)) start=$SECONDS rc
    shift 3
    echo "== $name (limit ${limit} s)"
    echo "== $name: $*" >>"$OUT/$log.log"
    timeout "$limit" "$@" >>"$OUT/$log.log" 2>&1
    rc=$?
    tail -n 15 "$OUT/$log.log"
    echo "== $name: exit $rc in $((SECONDS - start)) s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" "$limit" "$log.log" >>"$OUT/parts.tsv"
    results
}
SLOW=1  # the limits' factor
if [ $DRY = 1 ]; then
    export CUDA_VISIBLE_DEVICES=""
    SLOW=${DRY_SLOW:-3}  # a shared 2-core machine runs the toy sizes slower than a GPU the real
    PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
    CFG=smoke BATCH=2 STEPS=2 WARM=2 PREC=no SATPREC=32 DEV=cpu
    SATSIZE="--channels 8 --filters 4 --crop 8192"
    QUALITY="--batch 2 --workers 0 --checkpoint-every 2 --max-steps 4 --test-seconds 1
        --overrides sample_size=8192 encoder.channels=4 discriminator.filters=4"
    INSTALL="--this-python"
    SATVENV=$(ls -d /tmp/satvenv/lib/python3*/site-packages 2>/dev/null | head -1)
    [ -n "$SATVENV" ] && INSTALL="$INSTALL --sat-fallback $SATVENV"
    MODE="dry run: CPU, toy sizes, $($PY -V 2>&1)"
else
    PY=${PYTHON:-python3}
    CFG=sa2 BATCH=8 STEPS=10 WARM=3 PREC=bf16 SATPREC=16-mixed,bf16-mixed DEV=cuda
    SATSIZE="--channels 128 --filters 64 --crop 65536"  # stable_audio_2_0_vae in full
    QUALITY="--batch 8 --workers 3 --checkpoint-every 2000"
    INSTALL=""
    MODE="GPU: $(nvidia-smi -L 2>&1 | head -1)"
fi
echo "== $MODE; parts $PARTS; out $OUT"
note mode "$MODE"
note parts "$PARTS"
note commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -f "$WORK/env.sh" ] && . "$WORK/env.sh"
if has setup; then
    # shellcheck disable=SC2086
    part install setup 120 $PY bench/gpu_kit.py install "$WORK" --kit "$KIT" $INSTALL
    . "$WORK/env.sh" || { echo "no $WORK/env.sh: setup failed"; exit 1; }
    part check setup 60 $PY bench/gpu_kit.py check --installed "$WORK"
    part device setup 60 $PY -c "import torch, audioae, hydra, dac, encodec, auraloss; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
fi
note device "$($PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')" 2>&1 | tail -1)"
if has speed; then
    part "train_${CFG}_$PREC" speed 90 $PY bench/train_throughput.py --configs $CFG \
        --batch $BATCH --steps $STEPS --warmup $WARM --precision $PREC --flops
    # the warm-up steps compile (a G and a D step, then the first steps of each again)
    if [ $DRY = 0 ] || [ "${DRY_COMPILE:-0}" = 1 ]; then
        part "train_${CFG}_${PREC}_compile" speed 240 $PY bench/train_throughput.py --configs $CFG \
            --batch $BATCH --steps $STEPS --warmup 4 --precision $PREC --compile --flops
    else
        echo "== compile: skipped in the dry run (DRY_COMPILE=1 runs it: about 4 minutes)"
    fi
    # shellcheck disable=SC2086
    part "sat_train_$CFG" speed 150 $PY bench/sat_compare.py --sat-throughput --device $DEV \
        --sat-python "$SAT_PYTHON" --sat-precision $SATPREC --batch $BATCH --steps $STEPS \
        --warmup 4 $SATSIZE
fi
if has profile; then
    part "profile_$CFG" profile 90 $PY bench/gpu_profile.py --config $CFG --batch $BATCH \
        --warmup $WARM --steps $((STEPS < 4 ? STEPS : 4)) --precision $PREC
fi
TESTS=(-m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py)
if has quality; then
    # what is left of the deadline: 60 s for the untrained points, 100 s for the evaluations
    left=$((DEADLINE - SECONDS - 160))
    [ $DRY = 1 ] && left=120  # ends at --max-steps first; SIGTERM before the trainer's
    [ $left -lt 20 ] && left=20  # handler is up (import time) would kill it unsaved
    if has tests; then  # on the GPU beside the training: both recipes meet the same load
        timeout $((150 * SLOW)) $PY "${TESTS[@]}" >"$OUT/tests.log" 2>&1 &
        TESTS_PID=$! TESTS_START=$SECONDS
    fi
    # shellcheck disable=SC2086
    part quality quality $((left + 200)) $PY bench/gpu_quality.py --data "$KIT/data" \
        --out "$WORK/quality" --seconds $left $QUALITY
    [ -f "$WORK/quality/quality.png" ] && cp "$WORK/quality/quality.png" "$OUT/"
    if has tests; then
        wait "$TESTS_PID"
        rc=$?
        tail -n 5 "$OUT/tests.log"
        echo "== gpu_tests (beside quality): exit $rc"
        printf 'gpu_tests\t%s\t%s\t%s\ttests.log\n' "$rc" "$((SECONDS - TESTS_START))" "$((150 * SLOW))" >>"$OUT/parts.tsv"
    fi
elif has tests; then
    part gpu_tests tests 150 $PY "${TESTS[@]}"
fi
if has inference; then
    part inference speed 75 $PY bench/inference.py --device $DEV --seconds 30 120
fi
if has suite; then
    OMP_NUM_THREADS=2 part suite tests 300 $PY -m pytest -q -p no:cacheprovider -n 8 -rf \
        --tb=line --ignore=tests/test_gpu.py
fi
results
rm -f "$OUT/parts.tsv"  # its lines are in results.json
echo "== done in $SECONDS s: $(ls "$OUT" | tr '\n' ' ')"
failed=$($PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(' '.join(k for k,v in r['parts'].items() if v['exit']))" "$OUT/results.json") || failed="results.json unreadable"
[ -z "$failed" ] || { echo "== failed: $failed"; exit 1; }
