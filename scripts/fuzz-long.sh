#!/usr/bin/env bash
# The long fuzz run: the CI fuzz tests (tests/test_fuzz_hardening.py, tests/test_gpus_fuzz.py) with many more
# examples. Usage: scripts/fuzz-long.sh [EXAMPLES]   (default 3000; record the result in bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
export ENVDOCTOR_FUZZ_EXAMPLES="${1:-3000}"
exec python -m pytest -q -p no:cacheprovider tests/test_fuzz_hardening.py tests/test_gpus_fuzz.py
