#!/usr/bin/env bash
# Install the PostgreSQL and Redis servers the adapter tests start (tests/servers.py), when they are missing.
#
# Idempotent: does nothing when initdb/pg_ctl (on PATH or in /usr/lib/postgresql/*/bin) and redis-server are
# already there. Otherwise runs `apt-get update` once and installs the Debian packages `postgresql` and
# `redis-server` (as root, or through sudo). It does not start any service: the tests start throwaway servers
# on free loopback ports and stop them afterwards.
set -euo pipefail

have_postgres() {
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        return 0
    fi
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}

have_redis() {
    # redis-cli (Debian package redis-tools, a dependency of redis-server) creates the test cluster
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}

packages=()
have_postgres || packages+=(postgresql)
have_redis || packages+=(redis-server redis-tools)

if [ ${#packages[@]} -eq 0 ]; then
    echo "install-servers: PostgreSQL and Redis are already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-servers: missing ${packages[*]} and no apt-get here; install them with your package manager" >&2
    exit 1
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-servers: missing ${packages[*]}; run this script as root (or install sudo)" >&2
        exit 1
    fi
    as_root=(sudo)
fi

echo "install-servers: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

have_postgres || { echo "install-servers: PostgreSQL binaries still not found after install" >&2; exit 1; }
have_redis || { echo "install-servers: redis-server or redis-cli still not found after install" >&2; exit 1; }
echo "install-servers: done"
