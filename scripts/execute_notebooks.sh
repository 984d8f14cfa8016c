#!/usr/bin/env bash
# Re-execute chapters in place (outputs and widget state are committed), then regenerate the
# learner notebooks from them. Runs under the same settings as scripts/test.sh (one BLAS/torch
# thread per process, offline hub, Agg plots), so nbval compares like with like on any machine.
#   bash scripts/execute_notebooks.sh                          every chapter
#   bash scripts/execute_notebooks.sh notebooks/02_*.ipynb     some chapters
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
source scripts/test_env.sh
if [ "$#" -eq 0 ]; then set -- notebooks/[0-9]*.ipynb; fi
for nb in "$@"; do
  echo "execute: $nb"
  "$PYTHON" -m jupyter execute --inplace "$nb"
done
"$PYTHON" -m saelab.exercises.learner notebooks/ -o learner/
