#!/usr/bin/env bash
# The one command of a GPU session (docs/gpu-session.md): every figure the performance issues
# ask for, measured in one call of at most ~540 s, written to $OUT (at most 8 files).
#
#   on the GPU machine, from the repo root, with .data and .airbench carried:
#       bash benchmarks/gpu_session.sh
#   on a CPU machine, to check the script itself (tiny data, 1 epoch, GPU-only steps skipped):
#       OUT=/tmp/gpu-smoke PYTHON=.venv/bin/python bash benchmarks/gpu_session.sh --smoke
#
# ONLY="env data speedrun airbench" (say) runs just those steps (and the summary): a second
# call for airbench when its compile did not fit after the others.
# Steps, cheapest and most important first; each runs under `timeout` with a limit taken from
# what is left of the budget (BUDGET_S, default 540 s, counted from the start) minus what the
# steps after it are kept, and its exit status is logged; a failing step never stops the next.
#   a  env        PYTHONPATH=src (no install, no network); platformdirs from .data/pylib
#                 when the image has none; versions and the GPU as Python sees them
#   b  data       .data/cifar10-jpeg.tar.gz -> /tmp/cifar10/cifar-10-batches-py (converter;
#                 GPU_DATA=DIR for another folder than /tmp/cifar10)
#   c  gpu        nvidia-smi; dlbox doctor --json > $OUT/doctor.json
#   d  speedrun   benchmarks/time_to_accuracy.py, 10 runs -> $OUT/speedrun.json
#   e  e2e1, e2e2 `dlbox train` (defaults) end to end, twice; the time its accuracy line is
#                 printed and the wall time of the whole command
#   g  airbench   benchmarks/airbench_side_by_side.py on .airbench/airbench94_muon.py, 10 runs,
#                 next to speedrun.json -> $OUT/airbench.json (before f: the issue's ratio
#                 needs it in the same call, and its max-autotune compile takes minutes)
#   f  resnet     `dlbox train --model resnet` with its GPU defaults (16 epochs)
#   h  compiled   only with time to spare: time_to_accuracy.py --compile -> speedrun_compiled.json
#   i  long       only with time to spare: speedrun-long, 1 run -> speedrun_long.json
#   j  airbench96 only when ONLY names it (with long, without compiled): the harness on
#                 .airbench/airbench96_faster.py, 3 runs, next to step i's speedrun_long.json
#                 of the same call -> $OUT/airbench96.json (its own call: ONLY="env data long
#                 airbench96"; its three max-autotune compiles take minutes)
#   summary       benchmarks/gpu_summary.py -> $OUT/summary.json: each issue target, its
#                 figure, pass or fail
# Files in $OUT: session.log, doctor.json, speedrun.json, airbench.json, gpumem.csv (nvidia-smi
# memory.used sampled every ~0.25 s), summary.json, speedrun_compiled.json (if h ran),
# speedrun_long.json (if i ran), airbench96.json (if j ran; never with h): 8 files at most,
# the limit of what comes back.
# WORK_DIR (default /tmp/gpu-session) is removed and made again: only an empty folder or one
# a session made (.dlbox-gpu-session in it) is taken.
# Exit status: 0; 2 refused before any step (an argument, BUDGET_S, ONLY, a PYTHON that does
# not run, WORK_DIR, a missing carried file); 3 no summary.json, or no measuring step (d to j)
# ended with rc 0 (where ONLY names none of them: no step at all); 130 (143) stopped by
# Ctrl-C (SIGTERM), the summary still written.

set -u
set -o pipefail

MODE=gpu
PRINT_RESERVES=0  # --print-reserves: the GPU session's budget per step, then exit
# Anything else is refused: a typo (--smok, --help) must not start the 540 s GPU session.
if [ $# -gt 1 ]; then
    echo "error: one argument at most, got $#: $*" >&2
    echo "hint: no argument for the GPU session, or --smoke, or --print-reserves" >&2
    exit 2
fi
case "${1:-}" in
    "") ;;
    --smoke) MODE=smoke ;;
    --print-reserves) PRINT_RESERVES=1 ;;  # it only prints: no OUT, no folder made
    -h | --help)
        sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
        exit 0 ;;
    *)
        echo "error: unknown argument $1" >&2
        echo "hint: no argument for the GPU session, or --smoke, or --print-reserves" \
             "(--help says what each does)" >&2
        exit 2 ;;
esac
if [ -z "${OUT:-}" ] && (( ! PRINT_RESERVES )); then
    echo "error: OUT is not set (the folder that comes back)" >&2
    echo "hint: the device tool sets it; by hand: OUT=/tmp/gpu-out bash '$0' --smoke" >&2
    exit 2
fi
if ! [[ "${BUDGET_S:-540}" =~ ^[1-9][0-9]*$ ]] || (( ${BUDGET_S:-540} < 60 )); then
    echo "error: BUDGET_S=${BUDGET_S} is not a number of seconds, 60 or more" >&2
    echo "hint: leave it out for 540 (the whole session), or give the seconds this call may" \
         "take, e.g. BUDGET_S=300" >&2
    exit 2
fi
# the caller's relative OUT / WORK_DIR, before the cd below (its steps wrote a second OUT
# under the repo, and session.log and doctor.json failed)
if (( ! PRINT_RESERVES )); then
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd) || exit 2
fi
case "${WORK_DIR:-}" in "" | /*) ;; *) WORK_DIR="$PWD/$WORK_DIR" ;; esac
cd "$(dirname "$0")/.." || exit 2

export MODE OUT
export START_S=$(date +%s.%N)
export BUDGET_S=${BUDGET_S:-540}
export PY=${PYTHON:-python3}
export WORK=${WORK_DIR:-/tmp/gpu-session}
# WORK is removed and made again; only a folder with this file (or an empty one) is removed
WORK_MARKER=.dlbox-gpu-session
export STEPS="$WORK/steps.jsonl"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export AIRBENCH_SCRIPT=${AIRBENCH_SCRIPT:-.airbench/airbench94_muon.py}
export AIRBENCH96_SCRIPT=${AIRBENCH96_SCRIPT:-.airbench/airbench96_faster.py}
export RUNS=${RUNS:-10}
# airbench96_faster has no warm-up run: run 0 (its compile in its time) is left out of the
# mean, so 3 runs give a mean over 2
export RUNS96=${RUNS96:-3}
if [ "$MODE" = smoke ]; then
    export DEV=cpu DATA="$WORK/cifar10"
    export SMALL="--epochs 1 --num-train 200 --num-test 100 --threads 2"
    export AB_SMALL="--num-train 200 --num-test 100"
    export RUNS=${SMOKE_RUNS:-2} RUNS96=${SMOKE_RUNS:-2}
    export AIRBENCH_SCRIPT="$WORK/fake_airbench.py" AIRBENCH96_SCRIPT="$WORK/fake_airbench.py"
else
    export DEV=cuda DATA=${GPU_DATA:-/tmp/cifar10} SMALL="" AB_SMALL=""
fi

log() { echo "== [$(elapsed)s] $*"; }
elapsed() { awk -v s="$START_S" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }'; }
export -f log elapsed

# The steps in order, NAME:KEEP:MINIMUM. KEEP is the seconds a step is kept from the steps
# before it; these fit the default 540 s budget, and a smaller BUDGET_S scales them down.
# compiled and long only use what is left over, unless ONLY names them: then they are kept
# their MINIMUM (their MIN_LIMIT), unscaled, as the summary is always kept its 20 s.
# compiled runs only on a GPU after speedrun wrote speedrun.json, so only then is it kept.
# airbench96 runs only when ONLY names it (and is then kept its 240 s).
export KEEPS="env:0:0 data:60:0 gpu:20:0 speedrun:60:0 e2e1:40:0 e2e2:20:0 airbench:250:0 resnet:40:0 compiled:0:120 long:0:60 airbench96:0:240"
export SUMMARY_KEEP=20
# env, the first step, is always left ENV_FLOOR s (MIN_LIMIT's 15, and 5 s for the moments
# before it starts) when BUDGET_S allows it: the later steps' shares give way, not env
# (review: below BUDGET_S=378 the scaled shares plus the summary's 20 s skipped it)
export ENV_FLOOR=20
# the steps that measure (d to j): a call where none of them ended with rc 0 exits 3 (review:
# env, data and gpu end rc 0 whatever the GPU does, and a call that measured nothing exited 0)
export MEASURING="speedrun e2e1 e2e2 airbench resnet compiled long airbench96"

selected() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# reserve_after NAME: what the selected steps after NAME (and the summary) are kept, scaled
# by BUDGET_S / 540, so that ONLY="..." with a short BUDGET_S still runs what it names.
reserve_after() {
    local name=$1 seen=0 total=0 fixed=$SUMMARY_KEEP entry step keep minimum
    for entry in $KEEPS; do
        IFS=: read -r step keep minimum <<< "$entry"
        if (( seen )) && selected "$step"; then
            total=$(( total + keep ))
            if [ -n "${ONLY:-}" ] && { [ "$step" != compiled ] || [ "$MODE" = gpu ]; }; then
                fixed=$(( fixed + minimum ))
            fi
        fi
        if [ "$step" = "$name" ]; then seen=1; fi
    done
    awk -v t="$total" -v b="$BUDGET_S" -v s="$fixed" \
        'BEGIN { f = b / 540; printf "%d", s + t * (f < 1 ? f : 1) }'
}

# step_reserve NAME: what run_step keeps from step NAME for the steps after it; the data
# step is kept only the summary's: every later step reads the data, so skipping it to keep
# their time would fail them all; env keeps at most what leaves it ENV_FLOOR s.
step_reserve() {
    local reserve
    case $1 in
        data) echo "$SUMMARY_KEEP" ;;
        env)
            reserve=$(reserve_after env)
            echo $(( reserve < BUDGET_S - ENV_FLOOR ? reserve : BUDGET_S - ENV_FLOOR )) ;;
        *) reserve_after "$1" ;;
    esac
}

if [ -n "${ONLY:-}" ]; then
    for name in $ONLY; do
        if [[ " ${KEEPS//:/ } summary " != *" $name "* ]] || [[ "$name" =~ ^[0-9]+$ ]]; then
            echo "error: ONLY names an unknown step: $name" >&2
            echo "hint: the steps are: $(for e in $KEEPS; do
                printf '%s ' "${e%%:*}"; done)summary" >&2
            exit 2
        fi
    done
    if selected compiled && ! selected speedrun; then
        echo "error: ONLY names compiled without speedrun (step h compiles step d's runs and" \
             "compares them)" >&2
        echo "hint: name speedrun too: ONLY=\"... speedrun compiled\"" >&2
        exit 2
    fi
    if selected airbench96 && ! selected long; then
        echo "error: ONLY names airbench96 without long (step j compares airbench96_faster" \
             "with step i's speedrun-long of the same call)" >&2
        echo "hint: name long too: ONLY=\"env data long airbench96\"" >&2
        exit 2
    fi
    if selected airbench96 && selected compiled; then
        echo "error: ONLY names airbench96 with compiled (9 files in OUT, one more than comes" \
             "back; and both compiles would not fit in one call)" >&2
        echo "hint: a call of its own for airbench96: ONLY=\"env data long airbench96\"" >&2
        exit 2
    fi
fi

if (( PRINT_RESERVES )); then  # what each step would leave to the later ones, then exit
    for entry in $KEEPS; do printf '%s=%s\n' "${entry%%:*}" "$(step_reserve "${entry%%:*}")"; done
    exit 0
fi

# run_step NAME CAP COMMAND...: at most CAP seconds, and never into the seconds the later
# steps are kept (reserve_after); skipped when under MIN_LIMIT (default 15) seconds would be
# left for it.
run_step() {
    local name=$1 cap=$2 min=${MIN_LIMIT:-15}
    shift 2
    if ! selected "$name"; then
        log "step $name: not in ONLY=\"$ONLY\""
        return 0
    fi
    if [ -n "$STOPPED" ]; then
        log "step $name: SKIPPED (the session was stopped: $STOPPED)"
        printf '{"step": "%s", "rc": null, "skipped": true}\n' "$name" >> "$STEPS"
        return 0
    fi
    local reserve left limit start end rc seconds
    reserve=$(step_reserve "$name")
    left=$(awk -v s="$START_S" -v n="$(date +%s.%N)" -v b="$BUDGET_S" -v r="$reserve" \
        'BEGIN { printf "%d", b - (n - s) - r }')
    limit=$(( cap < left ? cap : left ))
    if (( limit < min )); then
        log "step $name: SKIPPED (${left}s left after the ${reserve}s kept for later steps)"
        printf '{"step": "%s", "rc": null, "skipped": true}\n' "$name" >> "$STEPS"
        return 0
    fi
    log "step $name: start (limit ${limit}s)"
    start=$(date +%s.%N)
    # In the background, waited for, so that a Ctrl-C or SIGTERM to this script reaches
    # stop_steps at once (timeout runs the step in a process group of its own, which the
    # terminal's Ctrl-C never reaches, and bash runs a trap only after a foreground command).
    STEP_LIMIT=$limit timeout -k 10 "$limit" "$@" < /dev/null &
    STEP_PID=$!
    wait "$STEP_PID"
    rc=$?
    while kill -0 "$STEP_PID" 2>/dev/null; do  # the wait a signal cut short: the step's end
        wait "$STEP_PID"
        rc=$?
    done
    if [ -n "$STOPPED" ]; then
        # The step may have ended (and bash reaped it) between the signal that cut the wait
        # short, whose 128 + N is in rc, and `kill -0`: bash kept its status for one more
        # wait (127 when the wait above had it). Seen on a loaded machine: rc=130, not 143.
        local again
        wait "$STEP_PID" 2>/dev/null
        again=$?
        if (( again != 127 )); then rc=$again; fi
    fi
    STEP_PID=""
    end=$(date +%s.%N)
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    log "step $name: rc=$rc$( ((rc == 124)) && echo ' (TIMED OUT)') in ${seconds}s"
    printf '{"step": "%s", "rc": %d, "start": %s, "end": %s, "seconds": %s, "limit": %d}\n' \
        "$name" "$rc" "$start" "$end" "$seconds" "$limit" >> "$STEPS"
    return 0
}

# ---- the steps (each runs in its own bash under timeout) --------------------------------------

step_env() {
    echo "mode $MODE, python $PY, repo $(pwd), commit $(git rev-parse --short HEAD 2>/dev/null)"
    echo "PYTHONPATH=$PYTHONPATH"
    "$PY" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("torch", "torchvision", "numpy", "PIL", "platformdirs", "rich", "matplotlib",
             "pynvml", "docker", "dlbox"):
    try:
        module = importlib.import_module(name)
        print(f"  {name:<13} {getattr(module, '__version__', '?'):<22} {module.__file__}")
    except Exception as error:
        print(f"  {name:<13} MISSING ({type(error).__name__}: {error})")
import torch
print("torch cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"  {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
          f"capability {p.major}.{p.minor}, cudnn {torch.backends.cudnn.version()}")
EOF
    "$PY" -m dlbox --version
}

step_data() {
    local src=.data/cifar10-jpeg.tar.gz
    if [ -f "$DATA/cifar-10-batches-py/test_batch" ]; then
        echo "$DATA/cifar-10-batches-py is there already"
        return 0
    fi
    if [ "$MODE" = smoke ]; then  # a tiny JPEG tree of the same layout, from synthetic images
        src="$WORK/mini-cifar10-jpeg.tar.gz"
        "$PY" - "$src" <<'EOF' || return 1
import io, sys, tarfile
from PIL import Image
from dlbox.data.cifar10 import CIFAR10_CLASSES
from dlbox.data.synthetic import make_synthetic_images
with tarfile.open(sys.argv[1], "w:gz") as tar:
    for split, count, seed in (("train", 300, 0), ("test", 100, 1)):
        images, labels = make_synthetic_images(count, seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            buf = io.BytesIO()
            Image.fromarray(image.transpose(1, 2, 0)).save(buf, "JPEG", quality=75)
            info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{CIFAR10_CLASSES[label]}/{i:04d}.jpg")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
print("wrote", sys.argv[1])
EOF
    fi
    # --tar (also cifar-10-python.tar.gz) is left out unless CONVERT_TAR=1: nothing here reads
    # it, and gzipping ~180 MB costs seconds of the budget.
    local tar_flag=()
    [ "${CONVERT_TAR:-0}" = 1 ] && tar_flag=(--tar)
    "$PY" .data/jpeg_to_cifar_batches.py "$src" "$DATA" "${tar_flag[@]}" || return 1
    ls -la "$DATA/cifar-10-batches-py"
}

step_gpu() {
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi
        nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
            --format=csv
    else
        echo "no nvidia-smi (expected in --smoke mode)"
    fi
    # doctor imports the installed frameworks on a GPU host; jax would take 75 % of the GPU
    XLA_PYTHON_CLIENT_PREALLOCATE=false timeout 70 "$PY" -m dlbox doctor --json > "$OUT/doctor.json"
    local rc=$?
    echo "dlbox doctor --json: rc=$rc, $(wc -c < "$OUT/doctor.json") bytes -> $OUT/doctor.json"
    return $rc
}

step_speedrun() {
    "$PY" benchmarks/time_to_accuracy.py --data "$DATA" --device "$DEV" --runs "$RUNS" \
        --json "$OUT/speedrun.json" $SMALL
}

# The wall time of `dlbox train` with its defaults, and when its accuracy line is printed.
# The record is written (whole: a temporary file renamed) as soon as that line is seen, and
# on SIGTERM (the step's limit signals its process group) with "stopped": a step stopped
# after its accuracy line keeps that line's time (review: it was lost with the stamper).
STAMPER='
import json, os, signal, sys, time
t0, record, first = float(sys.argv[1]), sys.argv[2], None
def save(**more):
    with open(record + ".tmp", "w") as tmp:
        json.dump({"accuracy_line_s": first, **more}, tmp)
    os.replace(record + ".tmp", record)
def stopped(signum, frame):
    save(stopped=True)
    os._exit(128 + signum)
signal.signal(signal.SIGTERM, stopped)
for line in sys.stdin:
    dt = time.time() - t0
    if first is None and "test accuracy:" in line:
        first = dt
        save()
    sys.stdout.write(f"[{dt:7.2f}s] {line}")
    sys.stdout.flush()
save()
'
export STAMPER
step_e2e() {
    local name=$1 t0 t1 rc
    t0=$(date +%s.%N)
    "$PY" -m dlbox train --device "$DEV" --data "$DATA" --run-dir "$WORK/$name" $SMALL 2>&1 \
        | "$PY" -u -c "$STAMPER" "$t0" "$WORK/$name.e2e.json"
    rc=${PIPESTATUS[0]}
    t1=$(date +%s.%N)
    "$PY" -c 'import json, os, sys; p = sys.argv[1]; d = json.load(open(p))
d.update(rc=int(sys.argv[2]), wall_s=round(float(sys.argv[3]) - float(sys.argv[4]), 3))
json.dump(d, open(p + ".tmp", "w")); os.replace(p + ".tmp", p); print(f"end to end: {d}")' \
        "$WORK/$name.e2e.json" "$rc" "$t1" "$t0"
    return "$rc"
}

step_resnet() {
    "$PY" -m dlbox train --model resnet --device "$DEV" --data "$DATA" --run-dir "$WORK/resnet" \
        --no-progress $SMALL
}

# side_by_side STEP SCRIPT RUNS DLBOX_JSON OUT_JSON: the harness on an airbench script,
# compared with DLBOX_JSON (a step of this call) when it is there; without it (the step that
# writes it skipped or failed, or every run of it failed: no mean time, which the harness
# would refuse) airbench is still measured, on its own
side_by_side() {
    local step=$1 script=$2 runs=$3 dlbox_json=$4 out_json=$5
    if [ "$MODE" = smoke ]; then
        "$PY" benchmarks/airbench_side_by_side.py --write-fake-script "$script" || return 1
    fi
    # stop the script itself before this step's limit, so that its JSON is still written
    local inner=$(( STEP_LIMIT > 60 ? STEP_LIMIT - 25 : STEP_LIMIT * 2 / 3 ))
    local compare=()
    if [ ! -f "$dlbox_json" ]; then
        log "step $step: no $dlbox_json from this call: $step alone, no ratio"
    elif ! "$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))["summary"]["time_seconds"]["mean"]
sys.exit(not isinstance(m, (int, float)) or isinstance(m, bool))' "$dlbox_json" 2>/dev/null
    then
        log "step $step: no mean time in $dlbox_json (every run of its step failed):" \
            "$step alone, no ratio"
    else
        compare=(--dlbox-json "$dlbox_json")
    fi
    "$PY" benchmarks/airbench_side_by_side.py --script "$script" --runs "$runs" \
        --data "$DATA" "${compare[@]}" --json "$out_json" \
        --timeout "$inner" $AB_SMALL
}

step_airbench() {  # next to step d's speedrun.json
    side_by_side airbench "$AIRBENCH_SCRIPT" "$RUNS" "$OUT/speedrun.json" "$OUT/airbench.json"
}

step_airbench96() {  # next to step i's speedrun_long.json: the >= 93.1 % target's baseline
    side_by_side airbench96 "$AIRBENCH96_SCRIPT" "$RUNS96" "$OUT/speedrun_long.json" \
        "$OUT/airbench96.json"
}

step_compiled() {
    "$PY" benchmarks/time_to_accuracy.py --data "$DATA" --device "$DEV" --runs "$RUNS" \
        --compile --json "$OUT/speedrun_compiled.json" $SMALL
}

step_long() {
    # speedrun-long, the candidate for the >= 93.1 % target: one run, its recipe (24 epochs).
    "$PY" benchmarks/time_to_accuracy.py --model speedrun-long --data "$DATA" --device "$DEV" \
        --runs 1 --json "$OUT/speedrun_long.json" $SMALL
}

step_summary() {
    "$PY" benchmarks/gpu_summary.py --out "$OUT" --work "$WORK" --mode "$MODE" \
        --budget-s "$BUDGET_S"
}

export -f selected reserve_after step_reserve run_step step_env step_data step_gpu step_speedrun step_e2e step_resnet \
    side_by_side step_airbench step_airbench96 step_compiled step_long step_summary

# Ctrl-C or SIGTERM: the step under way is stopped (SIGTERM to its process group: a training
# saves and stops), the later steps are skipped, and the summary still runs over what was
# measured; the script then exits 128 + the signal.
STOPPED="" STEP_PID=""
stop_steps() {
    [ -n "$STOPPED" ] && return 0
    STOPPED=$1
    echo "== stopped ($1): ending the step under way; the later steps are skipped"
    if [ -n "$STEP_PID" ]; then kill -TERM "$STEP_PID" 2>/dev/null; fi
}

# The files a session writes to OUT: an earlier session's are removed first, so that the
# summary never reads one as this session's figure.
OUT_FILES="session.log doctor.json speedrun.json airbench.json gpumem.csv summary.json
speedrun_compiled.json speedrun_long.json airbench96.json"

main() {
    rm -rf "$WORK" && mkdir -p "$WORK" && : > "$WORK/$WORK_MARKER"  # preflight checked it
    log "gpu_session.sh ($MODE), budget ${BUDGET_S}s, OUT=$OUT"
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
    if [ "$MODE" = smoke ] && [ -n "${SMOKE_BLOCK-docker platformdirs}" ]; then
        # as on the GPU image: no docker, no platformdirs (.data/pylib must stand in)
        mkdir -p "$WORK/block"
        for name in ${SMOKE_BLOCK-docker platformdirs}; do
            echo "raise ModuleNotFoundError('blocked by gpu_session.sh --smoke')" \
                > "$WORK/block/$name.py"
        done
        export PYTHONPATH="$PYTHONPATH:$WORK/block"
    fi
    if ! "$PY" -c "import platformdirs" 2>/dev/null; then
        export PYTHONPATH="$PWD/.data/pylib:$PYTHONPATH"
        log "no platformdirs in this Python: using the copy in .data/pylib"
    fi

    local sampler=""
    if command -v nvidia-smi >/dev/null; then
        echo "epoch_s,memory_used_mib,utilization_pct" > "$OUT/gpumem.csv"
        ( while :; do
            echo "$(date +%s.%N),$(nvidia-smi --query-gpu=memory.used,utilization.gpu \
                --format=csv,noheader,nounits | head -n 1 | tr -d ' ')"
            sleep 0.25
        done >> "$OUT/gpumem.csv" ) &
        sampler=$!
    fi

    #        name      cap  command          (what each is kept: KEEPS)
    run_step env        60  bash -c step_env
    run_step data      180  bash -c step_data
    run_step gpu        80  bash -c step_gpu
    run_step speedrun  150  bash -c step_speedrun
    run_step e2e1       60  bash -c "step_e2e e2e1"
    run_step e2e2       60  bash -c "step_e2e e2e2"
    run_step airbench  480  bash -c step_airbench
    run_step resnet    200  bash -c step_resnet
    if [ "$MODE" = gpu ] && [ -f "$OUT/speedrun.json" ]; then
        MIN_LIMIT=120 run_step compiled 200 bash -c step_compiled
    elif selected compiled; then
        log "step compiled: SKIPPED (only on a GPU, after step speedrun wrote speedrun.json)"
        printf '{"step": "compiled", "rc": null, "skipped": true}\n' >> "$STEPS"
    fi
    MIN_LIMIT=60 run_step long 150 bash -c step_long
    if [ -n "${ONLY:-}" ]; then  # only when named: with long, in a call of its own
        MIN_LIMIT=240 run_step airbench96 500 bash -c step_airbench96
    fi
    if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; fi
    # The summary always runs (30 s at most), whatever the budget left: it is what comes back.
    log "step summary: start"
    timeout -k 5 30 bash -c step_summary
    log "step summary: rc=$?"
    log "done; files in $OUT:"
    ls -la "$OUT"
    # exit 3 where nothing came of the call (review: it exited 0 with every step failed):
    # no measuring step that ONLY names ended with rc 0, or, where it names none, no step
    local named=() name
    for name in $MEASURING; do selected "$name" && named+=("$name"); done
    if [ ! -f "$OUT/summary.json" ]; then
        FAILED="no summary.json was written"
    elif (( ${#named[@]} )); then
        if ! grep -Eq "\"step\": \"($(IFS='|'; echo "${named[*]}"))\", \"rc\": 0," "$STEPS" \
                2>/dev/null; then
            FAILED="no measuring step ended with rc 0"
        fi
    elif ! grep -q '"rc": 0,' "$STEPS" 2>/dev/null; then
        FAILED="no step ended with rc 0"
    fi
    if [ -n "$FAILED" ] && [ -z "$STOPPED" ]; then log "exit 3: $FAILED"; fi
}

# refuse LINE HINT: the call stops before any step, exit 2; into session.log where it is this
# call's own (an earlier session's stays as it was)
refuse() {
    { echo "error: gpu_session.sh: $1"; echo "hint: $2"; } |
        if (( ${#earlier[@]} )); then cat >&2; else tee -a "$OUT/session.log" >&2; fi
    exit 2
}

# What the call needs, checked before anything runs: a missing folder or a Python that does
# not run would otherwise show only as every step failing, the device time spent.
preflight() {
    local missing=() blocked=" ${SMOKE_BLOCK-docker platformdirs} "
    if ! "$PY" -c 1 2>/dev/null; then
        refuse "PYTHON=$PY does not run: '$PY -c 1' failed" "set PYTHON to the Python\
 with torch and dlbox's requirements (e.g. PYTHON=.venv/bin/python), or leave it out for python3"
    fi
    # WORK is removed (review: WORK_DIR=$HOME would have been): only an empty folder or one
    # a session made
    if [ -e "$WORK" ] && ! { [ -d "$WORK" ] && { [ -f "$WORK/$WORK_MARKER" ] ||
            [ -z "$(ls -A "$WORK" 2>/dev/null)" ]; }; }; then
        refuse "WORK_DIR $WORK is not a folder this script made (no $WORK_MARKER in it):\
 it would be removed" "set WORK_DIR to a new or empty folder, or remove this one yourself if\
 it is an old session's"
    fi
    if selected data && [ "$MODE" = smoke -o ! -f "$DATA/cifar-10-batches-py/test_batch" ]; then
        [ -f .data/jpeg_to_cifar_batches.py ] || missing+=(.data/jpeg_to_cifar_batches.py)
        if [ "$MODE" = gpu ]; then
            [ -f .data/cifar10-jpeg.tar.gz ] || missing+=(.data/cifar10-jpeg.tar.gz)
        fi
    fi
    if { { [ "$MODE" = smoke ] && [[ "$blocked" == *" platformdirs "* ]]; } ||
            ! "$PY" -c "import platformdirs" 2>/dev/null; } && [ ! -d .data/pylib/platformdirs ]; then
        missing+=(.data/pylib/platformdirs)
    fi
    if [ "$MODE" = gpu ] && selected airbench && [ ! -f "$AIRBENCH_SCRIPT" ]; then
        missing+=("$AIRBENCH_SCRIPT")
    fi
    if [ "$MODE" = gpu ] && [ -n "${ONLY:-}" ] && selected airbench96 &&
            [ ! -f "$AIRBENCH96_SCRIPT" ]; then
        missing+=("$AIRBENCH96_SCRIPT")
    fi
    if (( ${#missing[@]} )); then
        refuse "missing ${missing[*]}" \
               "make .data and .airbench as docs/gpu-session.md's table says, and carry them"
    fi
}

earlier=()
for name in $OUT_FILES; do [ -e "$OUT/$name" ] && earlier+=("$name"); done
preflight  # first: a refused call leaves an earlier session's files (review: it removed them)
(( ${#earlier[@]} )) && (cd "$OUT" && rm -f -- "${earlier[@]}")
trap 'stop_steps SIGINT' INT
trap 'stop_steps SIGTERM' TERM
# Everything to the terminal and to session.log. The tee ignores Ctrl-C and SIGTERM (a
# `timeout` or `kill -- -PGID` signals the whole group): the log must outlast the summary.
exec > >(trap '' INT TERM; exec tee "$OUT/session.log") 2>&1
TEE_PID=$!
if (( ${#earlier[@]} )); then
    echo "== removed an earlier session's files from $OUT: ${earlier[*]}"
fi
FAILED=""
main
exec >&- 2>&-  # the log's last lines written before the script ends
wait "$TEE_PID" 2>/dev/null
case "$STOPPED" in
    SIGINT) exit 130 ;;
    SIGTERM) exit 143 ;;
esac
if [ -n "$FAILED" ]; then exit 3; fi  # no summary, or no step that ended well
exit 0
