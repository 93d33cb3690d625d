#!/usr/bin/env bash
# Every CUDA check of `fitcalc verify` in one go, with a summary. Sized for < 5 minutes on one
# H200 (141 GB); smaller GPUs refuse the runs that do not fit (exit 1, "predicted to need") and
# the summary says so. Run from anywhere:
#
#     scripts/gpu-validate.sh                 # records to gpu-validate-<date>/records.jsonl
#     OUT_DIR=/tmp/v PYTHON=.venv/bin/python scripts/gpu-validate.sh
#     ONLY='gpt-oss' CTX_LARGE=32768 scripts/gpu-validate.sh     # a subset (regex on run names)
#
# DEVICE=cpu runs the same sequence on the CPU (a smoke test of this script; slow and large):
#
#     DEVICE=cpu ONLY=tp2 CTX_SMALL=256 scripts/gpu-validate.sh   # the 2-rank case on gloo, ~15 s
#     DEVICE=cpu ONLY=tp2 N_GPUS=1 scripts/gpu-validate.sh        # the skip path: "skipped: 1 GPU"
#
# It runs: the `gpu`-marked tests; gpt-oss-20b with 2 layers and with all 24; a dense BF16 model
# (Llama-3.1-8B) and an FP8 model (Qwen3-8B, 128x128 blocks as Qwen3-8B-FP8 ships), each at two
# contexts; and, when the machine has two GPUs, gpt-oss-20b as 2 tensor-parallel ranks on NCCL
# (issue #8; otherwise the summary says it skipped it). Afterwards: copy the records into
# docs/validation/ and the table into docs/validation.md (see "GPU runs" there), and note the
# figures on the issue.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${OUT_DIR:-gpu-validate-$(date -u +%Y%m%d-%H%M%S)}
REC="$OUT/records.jsonl"
PER_RUN_TIMEOUT=${PER_RUN_TIMEOUT:-150}
CTX_SMALL=${CTX_SMALL:-4096}
CTX_LARGE=${CTX_LARGE:-16384}
DEVICE=${DEVICE:-cuda}
ONLY=${ONLY:-.}
mkdir -p "$OUT"
# GPUs for the multi-GPU case: what torch sees on CUDA; on the CPU the ranks are processes, so it
# always runs there unless N_GPUS says otherwise (to exercise the skip path).
if [ -z "${N_GPUS:-}" ]; then
  if [ "$DEVICE" = cuda ]; then
    N_GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
  else
    N_GPUS=2
  fi
fi

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu-validate: no CUDA device visible to $PY (torch.cuda.is_available() is false); nothing run" >&2
  exit 2
fi
{
  date -u +"date: %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.reserved --format=csv 2>/dev/null || echo "nvidia-smi: n/a"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
  git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

names=(); rcs=(); secs=(); whys=()
skip() {
  local name=$1; shift
  [[ "$name" =~ $ONLY ]] || return 0
  echo "== $name: $*" >&2
  names+=("$name"); rcs+=("skip"); secs+=(0); whys+=("$*")
}
run() {
  local name=$1; shift
  [[ "$name" =~ $ONLY ]] || return 0
  local t0
  t0=$(date +%s)
  echo "== $name: $*" >&2
  timeout "$PER_RUN_TIMEOUT" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  local rc=$?
  names+=("$name"); rcs+=("$rc"); secs+=($(( $(date +%s) - t0 ))); whys+=("")
}
verify() {
  local name=$1; shift
  run "$name" "$PY" -m fitcalc verify "$@" --device "$DEVICE" --json --record "$REC"
}

SPECS=tests/data/specs
run      pytest-gpu              "$PY" -m pytest -q -m gpu tests/measure
verify   gpt-oss-20b-L2-c$CTX_SMALL     gpt-oss-20b --layers 2 --context "$CTX_SMALL"
verify   gpt-oss-20b-L2-c$CTX_LARGE     gpt-oss-20b --layers 2 --context "$CTX_LARGE"
verify   gpt-oss-20b-all-c$CTX_SMALL    gpt-oss-20b --layers all --context "$CTX_SMALL"
verify   gpt-oss-20b-all-c$CTX_LARGE    gpt-oss-20b --layers all --context "$CTX_LARGE"
verify   llama-3.1-8b-bf16-c$CTX_SMALL  "$SPECS/llama-3.1-8b.yaml" --layers all --context "$CTX_SMALL"
verify   llama-3.1-8b-bf16-c$CTX_LARGE  "$SPECS/llama-3.1-8b.yaml" --layers all --context "$CTX_LARGE"
verify   qwen3-8b-fp8-c$CTX_SMALL       "$SPECS/qwen3-8b.yaml" --recipe fp8-block --layers all --context "$CTX_SMALL"
verify   qwen3-8b-fp8-c$CTX_LARGE       "$SPECS/qwen3-8b.yaml" --recipe fp8-block --layers all --context "$CTX_LARGE"
# Two ranks (issue #8): each GPU measured against its share of `fitcalc plan --tp 2`.
if [ "$N_GPUS" -ge 2 ]; then
  verify gpt-oss-20b-tp2-L2-c$CTX_SMALL  gpt-oss-20b --tp 2 --layers 2 --context "$CTX_SMALL"
else
  skip   gpt-oss-20b-tp2-L2-c$CTX_SMALL  "skipped: $N_GPUS GPU"
fi

echo
echo "summary ($OUT)"
printf '%-34s %4s %6s  %s\n' run rc secs result
worst=0
for i in "${!names[@]}"; do
  n=${names[$i]}; rc=${rcs[$i]}
  if [ "$rc" = skip ]; then
    printf '%-34s %4s %6s  %s\n' "$n" - - "${whys[$i]}"
    continue
  fi
  case $rc in
    0) what="ok";; 4) what="out of tolerance";; 5) what="out of memory (does not fit, measured)";;
    124) what="timed out after ${PER_RUN_TIMEOUT}s";; *) what="failed (see $OUT/$n.err)";;
  esac
  detail=""
  if [ "$n" != pytest-gpu ] && [ -s "$OUT/$n.out" ]; then
    detail=$("$PY" - "$OUT/$n.out" <<'PYEOF' 2>/dev/null
import json, sys
d = json.load(open(sys.argv[1]))
def e(x):
    return "-" if x is None else f"{x:+.1%}"
pk = d["peak"]
bad = [t["id"] for t in d["terms"] if t["ok"] is False]
ctx = next((t for t in d["terms"] if t["id"] == "overhead.cuda_context"), None)
out = f"peak {pk['measured_bytes'] / 2**30 if pk['measured_bytes'] else 0:.2f} GiB ({e(pk['error'])})"
if d.get("world_size"):
    out = f"{d['world_size']} ranks, rank {pk['rank']}: " + out
if ctx:
    out += f", context {(ctx['measured_bytes'] or 0) / 2**20:.0f} MiB ({e(ctx['error'])})"
if bad:
    out += ", outside: " + ",".join(bad)
print(out)
PYEOF
)
  elif [ "$n" = pytest-gpu ]; then
    detail=$(tail -n 1 "$OUT/$n.out" 2>/dev/null)
  fi
  printf '%-34s %4s %6s  %s%s\n' "$n" "$rc" "${secs[$i]}" "$what" "${detail:+ — $detail}"
  [ "$rc" -gt "$worst" ] && worst=$rc
done
echo "records: $REC"
exit "$worst"
