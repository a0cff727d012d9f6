#!/usr/bin/env bash
# Install uv (from PyPI, with the machine's Python) when it is not on PATH.
set -euo pipefail
if command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1; then
  exit 0
fi
echo "installing uv from PyPI..." >&2
python3 -m pip install --quiet uv || python3 -m pip install --quiet --user uv
python3 -m uv --version >/dev/null
