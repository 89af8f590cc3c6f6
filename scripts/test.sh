#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh machine, then runs every nox session but
# bench (tests on CPython 3.11 to 3.15 x asyncio, trio; lint; typecheck). Extra arguments go to nox.
# 3.11-3.13 come from pyenv; 3.14 and 3.15 too when pyenv has them, else from the cached Debian sid root of
# scripts/sid-root.sh (built on first use, which needs root; see noxfile.py).
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL and Redis servers for the adapter tests (the tests start throwaway instances on loopback).
bash scripts/install-servers.sh

# The interpreters visible through pyenv, whatever the machine's default is (3.14 and 3.15 when pyenv has them).
if command -v pyenv >/dev/null 2>&1; then
  versions=()
  for minor in 3.11 3.12 3.13 3.14 3.15; do
    v=$(pyenv versions --bare | grep -E "^${minor}\.[0-9]+$" | sort -V | tail -n 1 || true)
    case "$minor" in
      3.14|3.15) [ -n "$v" ] || continue ;;  # else noxfile.py runs it in the sid root
      *) [ -n "$v" ] || { echo "scripts/test.sh: CPython ${minor} is not installed in pyenv (pyenv install ${minor})" >&2; exit 1; } ;;
    esac
    versions+=("$v")
  done
  PYENV_VERSION=$(IFS=:; echo "${versions[*]}")
  export PYENV_VERSION
fi

python3 -m pip install --quiet --disable-pip-version-check nox uv
python3 -m nox "$@"
