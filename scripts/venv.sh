#!/usr/bin/env bash
# Creates .venv and installs fraudstream (with test tools) into it, once per pyproject.toml version.
# Prints nothing on stdout; progress on stderr. Used by bin/fraud and bin/test.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FRAUD_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.installed-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "fraudstream: needs Python >= 3.11 as '$python' (set PYTHON=...)" >&2
    exit 1
  fi
  echo "fraudstream: installing into $venv (first run only, about a minute)..." >&2
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root[dev]" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
