#!/usr/bin/env bash
# Print the path of a free-threaded CPython 3.13 ("3.13t"), building one if none is found.
#
# Search order:
#   1. $FTSERVER_FT_PYTHON (must be a free-threaded interpreter);
#   2. python3.13t on PATH, pyenv's 3.13.*t versions, uv's managed 3.13t;
#   3. the cache ($FTSERVER_CACHE, default ~/.cache/ftserver) from an earlier build;
#   4. build CPython 3.13.5 with --disable-gil from Debian's source package into the cache (~7 min).
# All progress goes to stderr; stdout carries only the interpreter path.
#
# FTSERVER_FT_PGO=1 asks for an interpreter built with PGO and LTO, as uv and the distributions
# ship it (bench/run.py --pgo): uv's managed 3.13t (python-build-standalone builds that way), else
# the cache's python-3.13.5t-pgo, else a build with --enable-optimizations --with-lto into it
# (it runs CPython's test suite for the profile: roughly an hour on 2 vCPUs).
set -euo pipefail

CACHE=${FTSERVER_CACHE:-$HOME/.cache/ftserver}
VERSION=3.13.5
PGO=${FTSERVER_FT_PGO:-0}
if [ "$PGO" = 1 ]; then
    PREFIX=$CACHE/python-${VERSION}t-pgo
    OPTIMIZE=(--enable-optimizations --with-lto)
else
    PREFIX=$CACHE/python-${VERSION}t
    OPTIMIZE=()
fi

log() { echo "ft-python: $*" >&2; }

is_free_threaded() {
    [ -x "$1" ] && "$1" -c 'import sys, sysconfig; sys.exit(0 if sys.version_info[:2] >= (3, 13) and sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' 2>/dev/null
}

found() { log "using $1"; echo "$1"; exit 0; }

if [ -n "${FTSERVER_FT_PYTHON:-}" ] && [ "$PGO" != 1 ]; then
    is_free_threaded "$FTSERVER_FT_PYTHON" || { log "FTSERVER_FT_PYTHON=$FTSERVER_FT_PYTHON is not a free-threaded CPython >= 3.13"; exit 1; }
    found "$FTSERVER_FT_PYTHON"
fi

candidates=()
if [ "$PGO" != 1 ]; then  # how these were built is unknown: only uv's are known to be PGO+LTO
    command -v python3.13t >/dev/null 2>&1 && candidates+=("$(command -v python3.13t)")
    for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13.*t; do
        [ -d "$d" ] && candidates+=("$d/bin/python3.13t")
    done
fi
if command -v uv >/dev/null 2>&1; then
    p=$(uv python find 3.13t 2>/dev/null || true)
    [ -n "$p" ] && candidates+=("$p")
fi
candidates+=("$PREFIX/bin/python3.13t")
for c in "${candidates[@]}"; do
    if is_free_threaded "$c"; then found "$c"; fi
done

log "no free-threaded CPython found; building $VERSION${OPTIMIZE[*]:+ (${OPTIMIZE[*]})} into $PREFIX"
mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9
if is_free_threaded "$PREFIX/bin/python3.13t"; then found "$PREFIX/bin/python3.13t"; fi

work=$CACHE/build
mkdir -p "$work"
tarball=$work/python3.13_${VERSION}.orig.tar.xz
logs=$work${OPTIMIZE[*]:+/pgo}
mkdir -p "$logs"
if [ ! -s "$tarball" ]; then
    # Debian's source package carries the upstream tarball unchanged. Use a private apt
    # state so the machine's own apt configuration is left untouched.
    mirror=$(grep -hoE '^URIs:\s*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
    [ -n "$mirror" ] || mirror=$(grep -hoE '^deb\s+\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    apt_dir=$work/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
    echo "deb-src $mirror trixie main" > "$apt_dir/sources.list"
    apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
              -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
    log "fetching python3.13 sources from $mirror (trixie)"
    apt-get "${apt_opts[@]}" update >&2
    (cd "$work" && apt-get "${apt_opts[@]}" source --download-only python3.13 >&2)
    [ -s "$tarball" ] || { log "download failed: $tarball missing"; exit 1; }
fi

# Build dependencies; present on most developer machines, installed when we are root.
need=()
for pkg in build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev uuid-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        log "installing build dependencies: ${need[*]}"
        apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2
    else
        log "missing build dependencies (install them): ${need[*]}"
    fi
fi

src=$logs/Python-$VERSION
rm -rf "$src"
tar -C "$logs" -xf "$tarball"
cd "$src"
log "configuring (--disable-gil ${OPTIMIZE[*]})"
./configure --disable-gil "${OPTIMIZE[@]}" --prefix="$PREFIX" --with-ensurepip=install >"$logs/configure.log" 2>&1 \
    || { tail -n 30 "$logs/configure.log" >&2; exit 1; }
log "compiling (several minutes; with PGO and LTO about an hour)"
# PGO's profile run is CPython's own test suite: a test that fails here (no network, root) must not fail the build.
make_args=()
[ "$PGO" = 1 ] && make_args=(PROFILE_TASK='-m test --pgo --timeout=1200 || true')
make -j"$(nproc)" "${make_args[@]}" >"$logs/make.log" 2>&1 || { tail -n 40 "$logs/make.log" >&2; exit 1; }
make install >"$logs/install.log" 2>&1 || { tail -n 40 "$logs/install.log" >&2; exit 1; }
rm -rf "$src"
is_free_threaded "$PREFIX/bin/python3.13t" || { log "build finished but $PREFIX/bin/python3.13t is not free-threaded"; exit 1; }
found "$PREFIX/bin/python3.13t"
