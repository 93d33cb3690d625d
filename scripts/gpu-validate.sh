#!/usr/bin/env bash
# Every CUDA check of `fitcalc verify` in one go, inside a fixed time budget, all output in one
# folder. Run from anywhere (it runs from the repository root):
#
#     OUT_DIR=/tmp/gv PYTHON=python3 scripts/gpu-validate.sh            # default: under 5 minutes on one H200
#     OUT_DIR=/tmp/gv PYTHON=python3 scripts/gpu-validate.sh --quick    # subset: under 2 minutes
#     scripts/gpu-validate.sh --dry-run [--quick]                       # print the steps and their limits
#     FITCALC_GPU_VALIDATE_DEVICE=cpu scripts/gpu-validate.sh           # CPU smoke of the script (tiny runs, <= 150 s)
#     tar czf gv.tgz -C /tmp gv                                         # everything it wrote
#
# Each step runs in its own process group (setsid); on its time limit the whole group gets
# SIGTERM, then SIGKILL 5 s later, so no child survives holding GPU memory; the group is killed
# again after every step whatever happened. A step's limit is also cut to what is left of the
# whole budget (BUDGET_S: 290 s default, 115 s --quick), so the script ends inside it even when
# every step runs long; a step with under 10 s left is skipped and the summary says so.
# The summary ($OUT_DIR/summary.txt) gets one line after every step, so it exists even when the
# script itself is stopped (SIGTERM/SIGINT: the running step's group is killed and a line says so).
# Verify steps write their --json document to $OUT_DIR/<step>.json and their --record line to
# $OUT_DIR/records.jsonl; every step's stderr goes to $OUT_DIR/<step>.err.
#
# Environment: PYTHON (default python3; fitcalc runs as `$PYTHON -m fitcalc` from the repository
# root, so a checkout plus PYTHONPATH for the dependencies is enough), OUT_DIR, BUDGET_S,
# ONLY (regex on step names), FITCALC_GPU_VALIDATE_DEVICE (or DEVICE: cuda, default; cpu for the
# smoke), N_GPUS (GPUs for the 2-rank step; default: what torch sees, 2 on the CPU where ranks are
# processes; N_GPUS=1 takes its skip path).
#
# Steps (expected seconds on one H200 after the speed work of issue #19, limit in brackets):
#   gpu-readings-probe   scripts/gpu_readings_probe.py when it exists (stops at 60 s) ~15  [70]
#   pytest-gpu           pytest -m gpu tests/measure                                ~30  [60]
#   gpt-oss-20b-L2-c4096                                                          ~8   [40]
#   llama-3.1-8b-bf16-all-c16384  (tests/data/specs)                                ~10  [45]
#   qwen3-8b-fp8-all-c4096        (tests/data/specs, fp8-block)                     ~10  [45]
#   gpt-oss-20b-all-c16384                                                        ~15  [50]
#   seed-gpt-oss-20b-whole-c131072   the seed's claim: 20b at its full context       ~55  [85]
#   seed-gpt-oss-120b-whole-c32768   the seed's claim: 120b on one 80 GB GPU        ~60  [90]
#   gpt-oss-20b-tp2-L2-c4096   2 NCCL ranks, only when torch sees 2 GPUs (else skipped)  ~15  [45]
#   verify-speed         benchmarks/verify_speed.py --device cuda, 2 layers, 4,096    ~40  [60]
# --quick: the probe, pytest-gpu, gpt-oss-20b-L2-c4096, llama-3.1-8b-bf16-all-c4096 and
# qwen3-8b-fp8-all-c4096.
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=default
DRY=0
for arg in "$@"; do
  case $arg in
    --quick) MODE=quick ;;
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "gpu-validate: unknown argument $arg (use --quick, --dry-run or --help)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
DEVICE=${FITCALC_GPU_VALIDATE_DEVICE:-${DEVICE:-cuda}}  # DEVICE: the name older callers use
OUT=${OUT_DIR:-gpu-validate-$(date -u +%Y%m%d-%H%M%S)}
ONLY=${ONLY:-.}
SPECS=tests/data/specs
if [ "$DEVICE" = cpu ]; then
  BUDGET=${BUDGET_S:-150}
else
  BUDGET=${BUDGET_S:-$([ "$MODE" = quick ] && echo 115 || echo 290)}
fi
MIN_STEP=10
GRACE=5
SUMMARY="$OUT/summary.txt"
REC="$OUT/records.jsonl"

# ---- the steps: name, limit (s), command -------------------------------------------------------
names=(); limits=(); cmds=()
add() { [[ "$1" =~ $ONLY ]] || return 0; names+=("$1"); limits+=("$2"); cmds+=("$3"); }
q() { printf '%q ' "$@"; }  # a command line, quoted
verify() {  # name limit args...: fitcalc verify with --json to $OUT/name.json, --record to records.jsonl
  local name=$1 limit=$2; shift 2
  add "$name" "$limit" "$(q "$PY" -m fitcalc verify "$@" --device "$DEVICE" --record "$REC" --json) > $(q "$OUT/$name.json")"
}
probe() {
  if [ -f scripts/gpu_readings_probe.py ]; then
    add gpu-readings-probe "$1" "$(q "$PY" scripts/gpu_readings_probe.py) > $(q "$OUT/gpu-readings-probe.json")"
  else
    add gpu-readings-probe 0 "SKIP scripts/gpu_readings_probe.py is not in this checkout"
  fi
}
pytest_gpu() { add pytest-gpu "$1" "$(q "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/measure) > $(q "$OUT/pytest-gpu.out")"; }

if [ "$DEVICE" = cpu ]; then
  # The smoke of the script itself: the same sequence, each run as small as verify allows, and
  # a step that outlives its limit with a child of its own, to show the group is killed.
  probe 30
  pytest_gpu 60
  verify gpt-oss-20b-L1-c64 45 gpt-oss-20b --layers 1 --context 64 --no-embeddings
  verify llama-3.1-8b-bf16-L1-c64 30 "$SPECS/llama-3.1-8b.yaml" --layers 1 --context 64 --no-embeddings
  verify qwen3-8b-fp8-L1-c64 30 "$SPECS/qwen3-8b.yaml" --recipe fp8-block --layers 1 --context 64 --no-embeddings
  add timeout-kill-check 3 "ps -o pgid= \$\$ > $(q "$OUT/timeout-kill-check.pgid"); sleep 300 & sleep 300; wait"
  if [ "${N_GPUS:-2}" -ge 2 ]; then  # ranks are processes on gloo here; N_GPUS=1 takes the skip path
    verify llama-3.1-8b-tp2-L1-c64 40 "$SPECS/llama-3.1-8b.yaml" --tp 2 --layers 1 --context 64 --no-embeddings
  else
    add llama-3.1-8b-tp2-L1-c64 0 "SKIP ${N_GPUS} GPU visible, the 2-rank case needs 2"
  fi
  add verify-speed 60 "$(q "$PY" benchmarks/verify_speed.py --device cpu --layers 1 --context 64 --formats bf16 --json "$OUT/verify-speed.json") > $(q "$OUT/verify-speed.out")"
elif [ "$MODE" = quick ]; then
  probe 30
  pytest_gpu 45
  verify gpt-oss-20b-L2-c4096 30 gpt-oss-20b --layers 2 --context 4096
  verify llama-3.1-8b-bf16-all-c4096 30 "$SPECS/llama-3.1-8b.yaml" --layers all --context 4096
  verify qwen3-8b-fp8-all-c4096 30 "$SPECS/qwen3-8b.yaml" --recipe fp8-block --layers all --context 4096
else
  probe 70  # it stops itself after 60 s
  pytest_gpu 60
  verify gpt-oss-20b-L2-c4096 40 gpt-oss-20b --layers 2 --context 4096
  verify llama-3.1-8b-bf16-all-c16384 45 "$SPECS/llama-3.1-8b.yaml" --layers all --context 16384
  verify qwen3-8b-fp8-all-c4096 45 "$SPECS/qwen3-8b.yaml" --recipe fp8-block --layers all --context 4096
  verify gpt-oss-20b-all-c16384 50 gpt-oss-20b --layers all --context 16384
  # the seed's two claims: gpt-oss-20b at its full context, gpt-oss-120b whole on one GPU
  verify seed-gpt-oss-20b-whole-c131072 85 gpt-oss-20b --layers all --context 131072
  verify seed-gpt-oss-120b-whole-c32768 90 gpt-oss-120b --layers all --context 32768
  # two tensor-parallel NCCL ranks (issue #8) when torch sees two GPUs
  if [ -z "${N_GPUS:-}" ]; then
    N_GPUS=$([ "$DRY" = 1 ] && echo 2 || "$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
  fi
  if [ "$N_GPUS" -ge 2 ]; then
    verify gpt-oss-20b-tp2-L2-c4096 45 gpt-oss-20b --tp 2 --layers 2 --context 4096
  else
    add gpt-oss-20b-tp2-L2-c4096 0 "SKIP ${N_GPUS} GPU visible, the 2-rank case needs 2"
  fi
  add verify-speed 60 "$(q "$PY" benchmarks/verify_speed.py --device cuda --layers 2 --context 4096 --json "$OUT/verify-speed.json") > $(q "$OUT/verify-speed.out")"
fi

if [ "$DRY" = 1 ]; then
  echo "gpu-validate ($MODE, device $DEVICE): budget ${BUDGET}s, output in $OUT"
  total=0
  for i in "${!names[@]}"; do
    printf '%-34s limit %4ss  %s\n' "${names[$i]}" "${limits[$i]}" "${cmds[$i]}"
    total=$((total + limits[i]))
  done
  echo "sum of the limits: ${total}s (each limit is also cut to what is left of the ${BUDGET}s budget)"
  exit 0
fi

mkdir -p "$OUT"
printf '%-34s %5s %7s %6s  %s\n' step rc secs limit result > "$SUMMARY"
# ---- running one step in its own process group ---------------------------------------------
CURRENT_PGID=""
CURRENT_NAME=""
kill_group() {  # pgid: TERM the whole group, KILL what is left after the grace period
  local g=$1
  kill -TERM -- "-$g" 2>/dev/null || return 0
  for _ in $(seq 1 $((GRACE * 10))); do
    kill -0 -- "-$g" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$g" 2>/dev/null
  return 0
}
on_signal() {
  [ -n "$CURRENT_PGID" ] && kill_group "$CURRENT_PGID"
  printf '%-34s %5s %7s %6s  %s\n' "${CURRENT_NAME:-script}" - - - "stopped: gpu-validate received a signal; step's process group killed" >> "$SUMMARY"
  exit 130
}
trap on_signal TERM INT HUP

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu-validate: no CUDA device visible to $PY (torch.cuda.is_available() is false); nothing run" | tee -a "$SUMMARY" >&2
  exit 2
fi
{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  echo "mode: $MODE, device: $DEVICE, budget: ${BUDGET}s"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.reserved,memory.used --format=csv 2>/dev/null || echo "nvidia-smi: n/a"
  timeout 60 "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
  git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

detail() {  # name: a short account of a verify step's --json document
  local f="$OUT/$1.json"
  [ -s "$f" ] || return 0
  timeout 20 "$PY" - "$f" <<'PYEOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
def e(x):
    return "-" if x is None else f"{x:+.1%}"
pk = d["peak"]
t = d.get("timings", {})
bad = [x["id"] for x in d["terms"] if x["ok"] is False]
out = f"prefill {t.get('prefill', 0):.1f}s total {t.get('total', 0):.1f}s; peak {(pk['measured_bytes'] or 0) / 2**30:.2f} GiB ({e(pk['error'])})"
if bad:
    out += "; outside: " + ",".join(bad)
print(out)
PYEOF
}

run_step() {  # index
  local i=$1 name=${names[$1]} limit=${limits[$1]} cmd=${cmds[$1]}
  if [[ "$cmd" == SKIP* ]]; then
    printf '%-34s %5s %7s %6s  %s\n' "$name" - - - "skipped: ${cmd#SKIP }" >> "$SUMMARY"
    echo "== $name: skipped (${cmd#SKIP })" >&2
    return
  fi
  local left=$((DEADLINE - $(date +%s)))
  if [ "$left" -lt "$MIN_STEP" ]; then
    printf '%-34s %5s %7s %6s  %s\n' "$name" - - "$limit" "skipped: ${left}s of the ${BUDGET}s budget left" >> "$SUMMARY"
    echo "== $name: skipped (${left}s of the budget left)" >&2
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s)" >&2
  local t0 rc timed_out=0
  t0=$(date +%s.%N)
  setsid bash -c "$cmd" 2> "$OUT/$name.err" < /dev/null &
  local pid=$!
  CURRENT_PGID=$pid
  CURRENT_NAME=$name
  local deadline=$(( $(date +%s) + limit ))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      timed_out=1
      kill_group "$pid"
      break
    fi
    sleep 0.2
  done
  wait "$pid" 2>/dev/null
  rc=$?
  kill_group "$pid"  # whatever the step left running in its group
  CURRENT_PGID=""
  CURRENT_NAME=""
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  [ "$timed_out" = 1 ] && rc=124
  local what
  case $rc in
    0) what="ok" ;; 4) what="out of tolerance" ;; 5) what="out of memory (does not fit, measured)" ;;
    124) what="timed out after ${limit}s; process group killed" ;; *) what="failed (see $name.err)" ;;
  esac
  local more=""
  case $name in
    pytest-gpu) more=$(tail -n 1 "$OUT/pytest-gpu.out" 2>/dev/null) ;;
    timeout-kill-check)
      local g left_procs
      g=$(tr -d ' ' < "$OUT/timeout-kill-check.pgid" 2>/dev/null)
      left_procs=$(pgrep -g "${g:-0}" 2>/dev/null | wc -l)
      more="process group ${g:-?} (the step's pid $pid): $left_procs process(es) left after the kill"
      if [ "$rc" = 124 ] && [ "$g" = "$pid" ] && [ "$left_procs" = 0 ]; then
        what="ok: outlived its limit as meant, its whole group killed"; rc=0
      fi ;;
    gpu-readings-probe) more="$(wc -c < "$OUT/$name.json" 2>/dev/null || echo 0) B of readings in $name.json" ;;
    verify-speed) more=$(tail -n 1 "$OUT/$name.out" 2>/dev/null) ;;
    *) more=$(detail "$name") ;;
  esac
  printf '%-34s %5s %7s %6s  %s%s\n' "$name" "$rc" "$secs" "$limit" "$what" "${more:+ — $more}" >> "$SUMMARY"
}

START=$(date +%s)
DEADLINE=$((START + BUDGET))
for i in "${!names[@]}"; do
  run_step "$i"
done
printf 'ended after %ss (budget %ss); records: %s\n' "$(( $(date +%s) - START ))" "$BUDGET" "$REC" >> "$SUMMARY"
echo
cat "$SUMMARY"
worst=0
while read -r _ rc _; do
  [[ "$rc" =~ ^[0-9]+$ ]] && [ "$rc" -gt "$worst" ] && worst=$rc
done < <(tail -n +2 "$SUMMARY")
exit "$worst"
