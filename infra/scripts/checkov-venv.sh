#!/usr/bin/env bash
# Create (or refresh) the checkov virtualenv that tests/infra/test_checkov.py runs.
#
# checkov lives outside the project venv on purpose: its own pins conflict with ours. The
# versions are locked in infra/scripts/checkov-requirements.txt (hashes included); regenerate
# that file with `infra/scripts/checkov-venv.sh --relock` after changing CHECKOV_VERSION.
set -euo pipefail

CHECKOV_VERSION="3.3.30"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${CHECKOV_VENV:-$root/.venv-checkov}"
lock="$root/infra/scripts/checkov-requirements.txt"

if [[ "${1:-}" == "--relock" ]]; then
  echo "checkov==$CHECKOV_VERSION" |
    uv pip compile --quiet --python-version 3.11 --generate-hashes --no-header - -o "$lock"
fi

if [[ -x "$venv/bin/checkov" ]] && [[ "$("$venv/bin/checkov" --version 2>/dev/null)" == "$CHECKOV_VERSION" ]]; then
  exit 0
fi

uv venv --quiet --allow-existing --python 3.11 "$venv"
VIRTUAL_ENV="$venv" uv pip sync --quiet --require-hashes "$lock"
"$venv/bin/checkov" --version
