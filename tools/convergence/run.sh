#!/usr/bin/env bash
# The convergence experiment end to end: pretrain a small code LLaMA on the standard library
# (make_base_model.py), build a held-out fine-tuning task split by file (make_task.py), fine-tune it
# with `lsp-offload train` in every mode on the same data order, seed and learning-rate schedule, and
# compare the runs (`lsp-offload compare`): held-out loss after the same number of steps, training time
# to a target loss, the paper's goals. Everything goes under OUT_DIR; the table is printed at the end.
#
#   tools/convergence/run.sh OUT_DIR [--quick] [options]      (run from anywhere; needs python3 with
#                                                              torch, transformers, tokenizers; node)
# The comparison (convergence.txt/.json/.html) and results.tar.gz are redone after every run, so a
# driver stopped early still leaves the runs it finished compared.
# Options (defaults in brackets; --quick: a smoke test of every stage in a few minutes):
#   --base-minutes M     pretraining time budget [2; quick 0.3]
#   --base-model DIR     use this Hugging Face directory instead of pretraining one
#   --base-flags "..."   more make_base_model.py options (e.g. "--hidden 512 --layers 6")
#   --task-package P     installed package whose sources are the task [torch]
#   --task-source DIR    a directory of *.py files instead of --task-package
#   --train-examples N   cap on training examples (whole files; 0: all) [4000; quick 1000]
#   --steps N            fine-tuning steps per run [200; quick 30]
#   --batch N --seq N    [8, 512]
#   --lr X               peak learning rate [2e-4]
#   --warmup N           warmup steps when the trainer has --lr-schedule [5 % of --steps]
#   --eval-every N       [--steps / 10; quick 10]   --eval-batches N  [10; quick 3]
#   --rank D --nnz R     lsp subspace size and non-zeros per projector row [512, 4]
#   --refit-every N      steps between lsp projector checks (0: none) [100, the paper's; quick 15]
#   --alpha A            refit a projector pair above this reconstruction error [0.3]
#   --lsp-flags "..."    more flags for the lsp runs (e.g. "--non-projected frozen")
#   --dtype f16|f32      weight storage on the GPU [f16]
#   --modes LIST         runs, in order [native,lsp,zero,lsp@budget,zero@budget]; "@budget" runs under
#                        the smallest GPU memory budget that both lsp and zero fit, plus 10 %
#   --variant NAME="FLAGS"  one more lsp run after the modes, labelled lsp~NAME, with FLAGS after the lsp
#                        flags (repeatable; a knob sweep on the same base model, task and schedule), e.g.
#                        --variant nnz16="--nnz 16" --variant per-layer="--sharing layer"
#   --no-warm-up         skip the unmeasured 2-step run of each mode before the measured ones (it
#                        fills the GPU driver's shader cache, so no measured run pays for compiling
#                        pipelines that an earlier one compiled for it)
#   --seed N             [0]
#   --python BIN --node BIN   [python3, node]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tools/convergence"
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

OUT_DIR="" QUICK=0 BASE_MINUTES="" BASE_MODEL="" BASE_FLAGS="" TASK_PACKAGE=torch TASK_SOURCE=""
TRAIN_EXAMPLES="" STEPS="" BATCH=8 SEQ=512 LR=2e-4 WARMUP="" EVAL_EVERY="" EVAL_BATCHES="" RANK=512
NNZ=4 REFIT_EVERY="" ALPHA=0.3 LSP_FLAGS="" DTYPE=f16 MODES="native,lsp,zero,lsp@budget,zero@budget"
SEED=0 PYTHON=python3 NODE=node WARM_UP=1 VARIANTS=()
declare -A VARIANT_FLAGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --base-minutes) BASE_MINUTES=$2; shift ;;
    --base-model) BASE_MODEL=$2; shift ;;
    --base-flags) BASE_FLAGS=$2; shift ;;
    --task-package) TASK_PACKAGE=$2; shift ;;
    --task-source) TASK_SOURCE=$2; shift ;;
    --train-examples) TRAIN_EXAMPLES=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --seq) SEQ=$2; shift ;;
    --lr) LR=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --eval-every) EVAL_EVERY=$2; shift ;;
    --eval-batches) EVAL_BATCHES=$2; shift ;;
    --rank) RANK=$2; shift ;;
    --nnz) NNZ=$2; shift ;;
    --refit-every) REFIT_EVERY=$2; shift ;;
    --alpha) ALPHA=$2; shift ;;
    --lsp-flags) LSP_FLAGS=$2; shift ;;
    --dtype) DTYPE=$2; shift ;;
    --modes) MODES=$2; shift ;;
    --variant)
      [[ "$2" == ?*=* ]] || { echo "run.sh: --variant wants NAME=\"FLAGS\", got $2" >&2; exit 2; }
      VARIANTS+=("${2%%=*}") VARIANT_FLAGS["${2%%=*}"]="${2#*=}"; shift ;;
    --seed) SEED=$2; shift ;;
    --no-warm-up) WARM_UP=0 ;;
    --python) PYTHON=$2; shift ;;
    --node) NODE=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$OUT_DIR" ] || { echo "run.sh: two output folders: $OUT_DIR and $1" >&2; exit 2; }; OUT_DIR=$1 ;;
  esac
  shift
done
[ -n "$OUT_DIR" ] || { usage >&2; exit 2; }
for v in "${VARIANTS[@]}"; do MODES="$MODES,lsp~$v"; done
if [ "$QUICK" = 1 ]; then
  : "${BASE_MINUTES:=0.3}" "${STEPS:=30}" "${EVAL_EVERY:=10}" "${EVAL_BATCHES:=3}" "${TRAIN_EXAMPLES:=1000}"
  : "${REFIT_EVERY:=15}"
  BASE_FLAGS="--max-corpus-mb 8 --eval-windows 32 $BASE_FLAGS"
else
  : "${BASE_MINUTES:=2}" "${STEPS:=200}" "${EVAL_BATCHES:=10}" "${TRAIN_EXAMPLES:=4000}" "${REFIT_EVERY:=100}"
fi
: "${EVAL_EVERY:=$(( STEPS / 10 > 0 ? STEPS / 10 : 1 ))}" "${WARMUP:=$(( STEPS / 20 > 0 ? STEPS / 20 : 1 ))}"

mkdir -p "$OUT_DIR/logs" "$OUT_DIR/runs"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
START=$SECONDS
say() { printf '[%4ds] %s\n' $(( SECONDS - START )) "$*"; }
CLI=("$NODE" "$ROOT/packages/cli/dist/bin.js")
[ -f "$ROOT/packages/cli/dist/bin.js" ] || { say "error: $ROOT/packages/cli/dist/bin.js is missing (build first)"; exit 1; }

main() {
say "convergence experiment into $OUT_DIR$([ "$QUICK" = 1 ] && echo ' (quick)')"
say "settings: steps $STEPS, batch $BATCH x seq $SEQ, lr $LR, eval every $EVAL_EVERY steps on $EVAL_BATCHES batches," \
  "lsp d $RANK r $NNZ refit every $REFIT_EVERY alpha $ALPHA${LSP_FLAGS:+ ($LSP_FLAGS)}, $DTYPE weights, seed $SEED, modes $MODES"

# 1. the base model
if [ -n "$BASE_MODEL" ]; then
  MODEL="$(cd "$BASE_MODEL" && pwd)"
  say "1/5 base model: given, $MODEL"
else
  MODEL="$OUT_DIR/base-model"
  say "1/5 base model: pretraining for $BASE_MINUTES min (log: logs/base-model.log)"
  # shellcheck disable=SC2086 # BASE_FLAGS is a list of options
  "$PYTHON" "$HERE/make_base_model.py" "$MODEL" --minutes "$BASE_MINUTES" --seed "$SEED" $BASE_FLAGS \
    2>&1 | tee "$OUT_DIR/logs/base-model.log"
fi

# 2. the fine-tuning task, split by file
say "2/5 task: signature + docstring -> body from ${TASK_SOURCE:-the package $TASK_PACKAGE} (log: logs/task.log)"
TASK_FROM=(--package "$TASK_PACKAGE")
[ -z "$TASK_SOURCE" ] || TASK_FROM=(--source-dir "$TASK_SOURCE")
TASK_NAME="$(basename "${TASK_SOURCE:-$TASK_PACKAGE}")"
"$PYTHON" "$HERE/make_task.py" "$OUT_DIR/task" "${TASK_FROM[@]}" --max-train-examples "$TRAIN_EXAMPLES" \
  --seed "$SEED" 2>&1 | tee "$OUT_DIR/logs/task.log"

# 3. the GPU budget of the ratio setting, and the learning-rate schedule the trainer offers
BUDGET=""
if [[ ",$MODES," == *"@budget,"* ]]; then
  if BUDGET="$("$NODE" "$HERE/budget.mjs" "$MODEL" --batch "$BATCH" --seq "$SEQ" --rank "$RANK" --nnz "$NNZ" \
    --dtype "$DTYPE" --refit-batches "$([ "$REFIT_EVERY" = 0 ] && echo 0 || echo 2)" 2>"$OUT_DIR/logs/budget.log")"; then
    cat "$OUT_DIR/logs/budget.log"
  else
    cat "$OUT_DIR/logs/budget.log"
    BUDGET=""
    say "no GPU budget (see above): the @budget runs are left out"
  fi
fi
HELP="$("${CLI[@]}" train --help)"
SCHEDULE=()
if grep -q -- '--lr-schedule' <<<"$HELP" && grep -q -- '--warmup-steps' <<<"$HELP"; then
  SCHEDULE=(--warmup-steps "$WARMUP" --lr-schedule cosine)
  say "3/5 learning rate: $WARMUP warmup steps, then cosine (same for every run)${BUDGET:+; GPU budget $BUDGET}"
else
  say "3/5 learning rate: constant $LR (this lsp-offload train has no --warmup-steps/--lr-schedule)${BUDGET:+; GPU budget $BUDGET}"
fi

# the comparison of the runs so far and the archive, redone after every run: a run cut short leaves them
compare_so_far() {
  [ "${#COMPARE[@]}" -gt 0 ] || return 1
  "${CLI[@]}" compare "${COMPARE[@]}" --out "$OUT_DIR/convergence.html" --json "$OUT_DIR/convergence.json" \
    --title "lsp-offload convergence: $(basename "$MODEL") fine-tuned on $TASK_NAME" >"$OUT_DIR/convergence.txt" 2>&1
}
pack() {
  # (driver.log is still being written: tar's status 1, "file changed as we read it", is expected)
  tar czf "$OUT_DIR/results.tar.gz.part" -C "$OUT_DIR" --exclude=./results.tar.gz --exclude=./results.tar.gz.part \
    --exclude=./base-model/model.safetensors --exclude=./task/train.jsonl --exclude=./task/eval.jsonl \
    --warning=no-file-changed . || [ $? = 1 ] || { say "could not pack results.tar.gz"; return 0; }
  mv "$OUT_DIR/results.tar.gz.part" "$OUT_DIR/results.tar.gz"
}

# 4. the fine-tuning runs, one after another on the same data, seed and schedule
COMMON=(--model "$MODEL" --rank "$RANK" --nnz "$NNZ" --batch "$BATCH" --seq "$SEQ" --lr "$LR" --dtype "$DTYPE"
  --seed "$SEED" --no-progress)
if [ "$WARM_UP" = 1 ]; then
  head -n 64 "$OUT_DIR/task/train.jsonl" >"$OUT_DIR/task/warm-up-train.jsonl"
  head -n 8 "$OUT_DIR/task/eval.jsonl" >"$OUT_DIR/task/warm-up-eval.jsonl"
  for mode in $(tr , '\n' <<<"$MODES" | sed 's/[@~].*//' | sort -u); do
    say "4/5 warm-up: 2 unmeasured steps of $mode (log: logs/warm-up-$mode.log)"
    refit=()
    [ "$mode" != lsp ] || [ "$REFIT_EVERY" = 0 ] || refit=(--refit-every 2 --alpha "$ALPHA")
    # shellcheck disable=SC2206 # LSP_FLAGS is a list of flags
    [ "$mode" != lsp ] || refit+=($LSP_FLAGS)
    "${CLI[@]}" train "${COMMON[@]}" --mode "$mode" --data "$OUT_DIR/task/warm-up-train.jsonl" \
      --eval-data "$OUT_DIR/task/warm-up-eval.jsonl" --steps 2 --eval-every 2 --eval-batches 1 "${refit[@]}" \
      >"$OUT_DIR/logs/warm-up-$mode.log" 2>&1 || say "warm-up of $mode failed (ignored; see its log)"
  done
fi
COMPARE=() FAILED=()
i=0
IFS=, read -r -a SPECS <<<"$MODES"
for spec in "${SPECS[@]}"; do
  i=$(( i + 1 ))
  mode="${spec%@*}" label="$spec" name="$spec" extra=() variant=()
  if [[ "$spec" == lsp~* ]]; then
    # shellcheck disable=SC2206 # the variant's flags are a list of flags
    mode=lsp name="lsp-${spec#lsp~}" variant=(${VARIANT_FLAGS[${spec#lsp~}]})
  elif [[ "$spec" == *@budget ]]; then
    [ -n "$BUDGET" ] || continue
    label="$mode@$BUDGET" name="$mode-budget" extra=(--gpu-memory "$BUDGET")
  elif [[ "$spec" == *@* ]]; then
    label="$spec" name="$mode-${spec#*@}" extra=(--gpu-memory "${spec#*@}")
  fi
  [ "$mode" != lsp ] || [ "$REFIT_EVERY" = 0 ] || extra+=(--refit-every "$REFIT_EVERY" --alpha "$ALPHA")
  # shellcheck disable=SC2206 # LSP_FLAGS is a list of flags
  [ "$mode" != lsp ] || extra+=($LSP_FLAGS)
  extra+=("${variant[@]}")
  say "4/5 run $i/${#SPECS[@]}: $label (log: logs/train-$name.log)"
  if "${CLI[@]}" train "${COMMON[@]}" --mode "$mode" --data "$OUT_DIR/task/train.jsonl" \
    --eval-data "$OUT_DIR/task/eval.jsonl" --steps "$STEPS" --eval-every "$EVAL_EVERY" --eval-batches "$EVAL_BATCHES" \
    --metrics-out "$OUT_DIR/runs/$name.jsonl" --report "$OUT_DIR/runs/$name.html" "${SCHEDULE[@]}" "${extra[@]}" \
    2>&1 | tee "$OUT_DIR/logs/train-$name.log" |
    { grep --line-buffered -E '^(eval @|done:|data:|train:|held out:|evaluation|truncated|adapter|projector check)|rror' || true; } |
    sed -u "s/^/    [$label] /"; then
    COMPARE+=("$label=$OUT_DIR/runs/$name.jsonl")
    compare_so_far || true
    pack
  else
    FAILED+=("$label")
    say "run $label FAILED (see logs/train-$name.log); the comparison leaves it out"
  fi
done

# 5. the comparison
STATUS=0
say "5/5 compare: ${#COMPARE[@]} runs"
compare_so_far || { STATUS=1; say "compare FAILED"; }
if [ -f "$MODEL/pretraining.json" ]; then
  "$NODE" -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`base model: ${(r.model.parameters / 1e6).toFixed(1)} M parameters, ${r.training.steps} steps ` +
      `(${(r.training.tokens / 1e6).toFixed(1)} M tokens) in ${r.training.seconds.toFixed(0)} s, ` +
      `held-out loss ${r.held_out.loss.toFixed(4)} on ${r.device}`);' "$MODEL/pretraining.json"
fi
[ ! -f "$OUT_DIR/convergence.txt" ] || cat "$OUT_DIR/convergence.txt"
[ "${#FAILED[@]}" -eq 0 ] || { STATUS=1; say "failed runs: ${FAILED[*]}"; }
say "done: $OUT_DIR/convergence.html, convergence.json, runs/, logs/; everything but the weights and the task data in results.tar.gz"
pack
return "$STATUS"
}

main 2>&1 | tee "$OUT_DIR/logs/driver.log"
exit "${PIPESTATUS[0]}"
