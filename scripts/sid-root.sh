#!/usr/bin/env bash
# CPython 3.14 and 3.15 (with PostgreSQL and Redis) from Debian sid, in a root cached outside the repository, for
# the tests-3.14 and tests-3.15 nox sessions on machines whose pyenv has neither (no index serves a CPython
# that runs on Debian 12).
#
#   scripts/sid-root.sh build          build the root, unless it is present and healthy
#   scripts/sid-root.sh check          exit 0 when the root is present and healthy, 1 otherwise
#   scripts/sid-root.sh run CMD [ARG]  build if needed, then run CMD inside the root with /proc, /dev, /dev/pts
#                                      and /dev/shm mounted and this repository bind-mounted at /repo (the
#                                      working directory); ../shared, when it exists, read-only at /shared
#
# The root is built once per machine (debootstrap --variant=minbase sid, then apt-get inside it) into a
# temporary folder next to it and moved into place only after the health check passed and the marker file was
# written, so a half-built root is never used. A root that fails the check (or was built from another recipe)
# is rebuilt, but never deleted while anything is still mounted inside it: the script stops and names the mount.
# Everything this script mounts is unmounted on every exit path (EXIT trap). One run at a time per root (flock).
#
# Environment: SESSION_STORE_SID_ROOT (default /var/cache/session-store-compat/sid-root);
# SESSION_STORE_SID_MIRROR (default: the Debian mirror in this machine's apt sources; none found is an error).
# Needs root (debootstrap, chroot, mount); installs debootstrap with apt-get when it is missing.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${SESSION_STORE_SID_ROOT:-/var/cache/session-store-compat/sid-root}
RECIPE="3 python3.14 python3.15 postgresql redis-server git"  # change it to have every cached root rebuilt
MARKER=.session-store-sid-root                              # in the root, written last, holds RECIPE
BOOTSTRAP_PACKAGES=python3.14,python3.14-venv,ca-certificates
APT_PACKAGES=(python3.15 python3.15-venv postgresql redis-server util-linux git)  # git: tests/test_importing.py
# The mirror's sid Release file can be older than its Valid-Until; sid has no security updates to miss.
APT=(apt-get -qq -o Acquire::Check-Valid-Until=false -o APT::Install-Recommends=false)

say() { echo "sid-root: $*" >&2; }
die() { say "error: $*"; exit 1; }

MOUNTED=()  # what this process mounted, in order; unmounted in reverse by cleanup

mount_into() {  # mount_into TARGET MOUNT-ARGS...: mkdir TARGET, mount, remember it
    local target=$1
    shift
    mkdir -p "$target"
    mount "$@" "$target"
    MOUNTED+=("$target")
}

unmount_all() {
    local index
    for ((index = ${#MOUNTED[@]} - 1; index >= 0; index--)); do
        umount "${MOUNTED[index]}" 2>/dev/null || umount --lazy "${MOUNTED[index]}" || say "could not unmount ${MOUNTED[index]}"
    done
    MOUNTED=()
}

cleanup() {
    local status=$?
    unmount_all
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mounts_under() {  # the mount points strictly inside $1 (from /proc/mounts), one a line
    awk -v dir="$1" 'index($2, dir "/") == 1 { print $2 }' /proc/mounts
}

unmount_stale() {  # mounts left under $1 by a run that was killed (SIGKILL: no trap); we hold the lock
    local dir=$1 point
    for point in $(mounts_under "$dir" | sort -r); do
        say "unmounting $point, left behind by an earlier run"
        umount "$point" 2>/dev/null || umount --lazy "$point" || die "cannot unmount $point; unmount it by hand"
    done
}

remove_root() {  # rm -rf $1, refused while something is mounted inside it
    local dir=$1 mounted
    [ -e "$dir" ] || return 0
    mounted=$(mounts_under "$dir")
    [ -z "$mounted" ] || die "$dir still has mounts inside it; not deleting it. Unmount them first: umount $(echo $mounted)"
    rm -rf --one-file-system "$dir"
}

healthy() {  # healthy DIR: built from this recipe, both interpreters run with ssl and venv, the servers exist
    local dir=$1 version
    [ -f "$dir/$MARKER" ] && [ "$(cat "$dir/$MARKER")" = "$RECIPE" ] || return 1
    for version in 3.14 3.15; do
        chroot "$dir" "/usr/bin/python$version" -c "import ssl, sqlite3, venv, ensurepip" 2>/dev/null || return 1
    done
    compgen -G "$dir/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null && [ -x "$dir/usr/bin/redis-server" ] && [ -x "$dir/usr/bin/git" ]
}

APT_SOURCES=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)

host_mirror() {  # the Debian mirror of this machine's apt sources (one-line "deb URI" or deb822 "URIs:"), or nothing
    local file
    for file in "${APT_SOURCES[@]}"; do
        [ -f "$file" ] || continue
        # one-line: deb [options] URI suite...; deb822: a stanza with Types: deb, URIs: ..., not Enabled: no.
        # The Debian archive is the URI whose path ends in /debian (debian-security and third-party repos do not).
        awk '
            function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") { n = split(uris, list, " ");
                for (i = 1; i <= n; i++) print list[i] } types = ""; uris = ""; enabled = "" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^deb[ \t]/ { sub(/^deb[ \t]+(\[[^]]*\][ \t]+)?/, ""); split($0, words, /[ \t]+/); print words[1]; next }
            tolower($1) == "types:" { $1 = ""; types = $0 " "; next }
            tolower($1) == "uris:" { $1 = ""; uris = $0; next }
            tolower($1) == "enabled:" { enabled = tolower($2); next }
            END { flush() }
        ' "$file"
    done | grep -E '^https?://[^ ]+/debian/?$' | head -n 1 || true
}

copy_host_files() {  # DNS and the host's CA bundle (pip inside must trust what the host trusts)
    local dir=$1
    mkdir -p "$dir/etc/ssl/certs"
    cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        cp -L /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    fi
}

mount_system() {  # /proc, /dev, /dev/pts, /dev/shm of the root $1
    local dir=$1
    mount_into "$dir/proc" -t proc proc
    mount_into "$dir/dev" --bind /dev
    mount_into "$dir/dev/pts" --bind /dev/pts
    mount_into "$dir/dev/shm" -t tmpfs -o mode=1777,size=256m tmpfs
}

build() {
    local started mirror new="$ROOT.building"
    if [ -d "$ROOT" ] && healthy "$ROOT"; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "building $ROOT needs root (debootstrap, chroot, mount); run as root or sudo"
    started=$(date +%s)
    if ! command -v debootstrap >/dev/null 2>&1; then
        say "installing debootstrap"
        DEBIAN_FRONTEND=noninteractive apt-get -qq update
        DEBIAN_FRONTEND=noninteractive apt-get -qq install -y debootstrap >/dev/null
    fi
    mirror=${SESSION_STORE_SID_MIRROR:-$(host_mirror)}
    [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources: no 'deb URI' line or deb822 'URIs:' ending in /debian); set SESSION_STORE_SID_MIRROR=<the mirror's URL>"
    if [ -e "$ROOT" ]; then
        say "$ROOT is not healthy (or from another recipe); rebuilding it"
        [ -z "$(mounts_under "$ROOT")" ] || die "$ROOT still has mounts inside it; not replacing it. Unmount them first: umount $(echo $(mounts_under "$ROOT"))"
    fi
    remove_root "$new"
    mkdir -p "$(dirname "$ROOT")"
    say "debootstrap sid from $mirror into $new"
    debootstrap --variant=minbase --include="$BOOTSTRAP_PACKAGES" sid "$new" "$mirror" >"$new.log" 2>&1 ||
        { tail -n 30 "$new.log" >&2; die "debootstrap failed (log: $new.log)"; }
    copy_host_files "$new"
    mount_system "$new"
    printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"  # installing a server must not start it
    chmod +x "$new/usr/sbin/policy-rc.d"
    say "apt-get install ${APT_PACKAGES[*]}"
    chroot "$new" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
        sh -ec "${APT[*]} update && ${APT[*]} install -y ${APT_PACKAGES[*]} >/dev/null && apt-get clean" \
        >>"$new.log" 2>&1 || { tail -n 30 "$new.log" >&2; die "apt-get inside the root failed (log: $new.log)"; }
    unmount_all
    echo "$RECIPE" >"$new/$MARKER"
    healthy "$new" || die "the new root $new fails its health check (log: $new.log)"
    remove_root "$ROOT"
    mv "$new" "$ROOT"
    mv "$new.log" "$ROOT.log"
    say "built $ROOT in $(($(date +%s) - started)) s ($(du -sh --one-file-system "$ROOT" | cut -f1))"
}

run_inside() {
    [ "$(id -u)" -eq 0 ] || die "running inside $ROOT needs root (chroot, mount)"
    build
    copy_host_files "$ROOT"
    mount_system "$ROOT"
    mount_into "$ROOT/repo" --bind "$REPO"
    if [ -d "$REPO/../shared" ]; then
        mount_into "$ROOT/shared" --bind "$(cd "$REPO/../shared" && pwd)"
        mount -o remount,bind,ro "$ROOT/shared"
    fi
    local passed=() name
    for name in CI TERM COMPAT_TEST_BACKENDS SESSION_STORE_SOAK PIP_INDEX_URL PIP_EXTRA_INDEX_URL \
        HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
        [ -z "${!name+set}" ] || passed+=("$name=${!name}")
    done
    # not exec: the EXIT trap must still unmount after the command ends
    chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        "${passed[@]}" /bin/sh -c 'cd /repo && exec "$@"' sid-root "$@"
}

command=${1:-}
[ $# -gt 0 ] && shift
mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
unmount_stale "$ROOT"
unmount_stale "$ROOT.building"
case "$command" in
    build) build ;;
    check) healthy "$ROOT" ;;
    run)
        [ $# -gt 0 ] || die "run needs a command, e.g. scripts/sid-root.sh run python3.14 --version"
        run_inside "$@"
        ;;
    *) die "unknown command '${command}'; use build, check or run CMD [ARG...]" ;;
esac
