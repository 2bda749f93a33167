#!/usr/bin/env bash
# The README's test command (`make test`): the linter, the type checker and the test suite, all three run and
# reported even when one fails; exits non-zero if any did. Its arguments (make's PYTEST_ARGS) go to pytest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=()
echo "== ruff (lint: pyproject.toml [tool.ruff])"
python -m ruff check . || failed+=(ruff)
echo "== mypy (types of dmc/: pyproject.toml [tool.mypy])"
python -m mypy || failed+=(mypy)
echo "== pytest"
python -m pytest "$@" || failed+=(pytest)

if [ ${#failed[@]} -gt 0 ]; then
    echo "make test: failed: ${failed[*]}" >&2
    exit 1
fi
