#!/usr/bin/env bash
# RecBole's side-by-side benchmark environment, then the benchmark itself.
#
# RecBole 1.2.1 is the benchmark's baseline, not a kgforge dependency: it lives in
# benchmarks/.venv-rec (git-ignored), never in the project's .venv. Arguments go to
# benchmarks/bench_rec.py:
#
#     benchmarks/rec_env.sh --kgforge-recbole-settings
#
# The environment is built once (torch CPU, RecBole 1.2.1 with the pins below, kgforge in editable
# mode) and reused afterwards. ENV_ONLY=1 builds it without running the benchmark. RecBole's KGAT
# also needs dgl, which has no release for torch 2.13: it is not installed (bench_rec.py reports it).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=benchmarks/.venv-rec
PYTHON=${PYTHON:-python3}
TORCH=torch==2.13.0
RECBOLE=recbole==1.2.1
# RecBole 1.2.1 (2024) predates numpy 2 and scipy 1.14 (sparse .A), and the ray 2.6 it pulls in
# imports pkg_resources, which setuptools 81 removed: the pins keep releases it runs with.
PINS=("numpy<2" "scipy<1.14" "pandas<2.3" "setuptools<81")

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import recbole.quick_start, kg_builder" 2>/dev/null; then
    # The pinned CPU build of torch first: RecBole asks only for torch>=1.10, which an unpinned
    # install would meet with the multi-gigabyte CUDA build.
    "$VENV/bin/pip" install --quiet "$TORCH"
    "$VENV/bin/pip" install --quiet "$RECBOLE" "${PINS[@]}" -e .
fi
if [ -n "${ENV_ONLY:-}" ]; then
    exit 0
fi
exec "$VENV/bin/python" benchmarks/bench_rec.py "$@"
