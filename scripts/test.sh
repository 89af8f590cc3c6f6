#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh machine, then runs every nox session but
# bench (tests on CPython 3.11, 3.12, 3.13 x asyncio, trio; lint; typecheck). Extra arguments go to nox.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL and Redis servers for the adapter tests (the tests start throwaway instances on loopback).
bash scripts/install-servers.sh

# All three interpreters visible through pyenv, whatever the machine's default is.
if command -v pyenv >/dev/null 2>&1; then
  versions=()
  for minor in 3.11 3.12 3.13; do
    v=$(pyenv versions --bare | grep -E "^${minor}\.[0-9]+$" | sort -V | tail -n 1 || true)
    [ -n "$v" ] || { echo "scripts/test.sh: CPython ${minor} is not installed in pyenv (pyenv install ${minor})" >&2; exit 1; }
    versions+=("$v")
  done
  PYENV_VERSION=$(IFS=:; echo "${versions[*]}")
  export PYENV_VERSION
fi

python3 -m pip install --quiet --disable-pip-version-check nox uv
python3 -m nox "$@"
