#!/usr/bin/env bash
# The KG-completion benchmark's own environment, then the benchmark itself.
#
# PyKEEN is the benchmark's baseline, not a kgforge dependency: it lives in benchmarks/.venv-kgc
# (git-ignored), never in the project's .venv. Arguments go to benchmarks/bench_kgc.py:
#
#     benchmarks/kgc_env.sh --datasets umls --minutes 2
#
# The environment is built once (torch, PyKEEN, kgforge in editable mode) and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=benchmarks/.venv-kgc
PYTHON=${PYTHON:-python3}
TORCH=torch==2.13.0
PYKEEN=pykeen==1.11.1

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import pykeen, kg_builder" 2>/dev/null; then
    # The pinned CPU build of torch first: PyKEEN asks only for torch>=2.0, which an unpinned
    # install would meet with the multi-gigabyte CUDA build.
    "$VENV/bin/pip" install --quiet "$TORCH"
    "$VENV/bin/pip" install --quiet "$PYKEEN" -e .
fi
exec "$VENV/bin/python" benchmarks/bench_kgc.py "$@"
