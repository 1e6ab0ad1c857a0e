#!/usr/bin/env bash
# The graph-tools environment: kgforge beside the Neo4j client libraries users already have
# (LangChain's langchain-neo4j, neo4j-graphrag), then the recipes' tests or the ingest benchmark.
#
# Those libraries are not kgforge dependencies: they live in benchmarks/.venv-graphtools
# (git-ignored), never in the project's .venv. In the project's .venv the tests in tests/graphtools
# skip, saying which package is missing, and bench_ingest.py's Neo4jWriter row says "not installed".
#
#     benchmarks/graphtools_env.sh test                 # pytest tests/graphtools tests/api/test_schema.py
#     benchmarks/graphtools_env.sh test -k langchain    # extra arguments go to pytest
#     benchmarks/graphtools_env.sh bench --limit 20000  # benchmarks/bench_ingest.py with its arguments
#     benchmarks/graphtools_env.sh python -c "import neo4j_graphrag"
#
# The environment is built once (CPU torch, kgforge with its dev extra in editable mode, the two
# libraries at pinned versions) and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=benchmarks/.venv-graphtools
PYTHON=${PYTHON:-python3}
TORCH=torch==2.13.0
LANGCHAIN_NEO4J=langchain-neo4j==0.11.0
NEO4J_GRAPHRAG=neo4j-graphrag==1.22.0

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import langchain_neo4j, neo4j_graphrag, kg_builder, pytest" 2>/dev/null; then
    # The pinned CPU build of torch first, so that no dependency pulls the multi-gigabyte CUDA build.
    "$VENV/bin/pip" install --quiet "$TORCH"
    "$VENV/bin/pip" install --quiet -e '.[dev]' "$LANGCHAIN_NEO4J" "$NEO4J_GRAPHRAG"
fi

command=${1:-test}
[ $# -gt 0 ] && shift
case "$command" in
    test)   exec "$VENV/bin/python" -m pytest tests/graphtools tests/api/test_schema.py -q "$@" ;;
    bench)  exec "$VENV/bin/python" benchmarks/bench_ingest.py "$@" ;;
    python) exec "$VENV/bin/python" "$@" ;;
    *)      echo "usage: $0 [test|bench|python] [arguments...]" >&2; exit 2 ;;
esac
