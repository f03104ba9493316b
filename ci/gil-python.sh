#!/usr/bin/env bash
# Print the path of a CPython >= 3.11 with the GIL (prefers 3.13, then 3.12, so that the
# asgion conformance test, which needs >= 3.12, can run). $FTSERVER_GIL_PYTHON overrides.
set -euo pipefail

is_gil_python() {
    [ -x "$1" ] && "$1" -c 'import sys, sysconfig; sys.exit(0 if sys.version_info >= (3, 11) and not sysconfig.get_config_var("Py_GIL_DISABLED") else 1)' 2>/dev/null
}

if [ -n "${FTSERVER_GIL_PYTHON:-}" ]; then
    is_gil_python "$FTSERVER_GIL_PYTHON" || { echo "gil-python: FTSERVER_GIL_PYTHON=$FTSERVER_GIL_PYTHON is not a GIL CPython >= 3.11" >&2; exit 1; }
    echo "$FTSERVER_GIL_PYTHON"; exit 0
fi
for minor in 13 12 14 11; do
    cands=()
    command -v "python3.$minor" >/dev/null 2>&1 && cands+=("$(command -v "python3.$minor")")
    for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3."$minor".*; do
        [ -d "$d" ] && cands+=("$d/bin/python3.$minor")
    done
    for c in "${cands[@]}"; do
        # pyenv shims may point at an interpreter that is not installed; resolve for real.
        real=$("$c" -c 'import sys; print(sys.executable)' 2>/dev/null || true)
        if [ -n "$real" ] && is_gil_python "$real"; then echo "gil-python: using $real" >&2; echo "$real"; exit 0; fi
    done
done
if is_gil_python "$(command -v python3 || true)"; then command -v python3; exit 0; fi
echo "gil-python: no CPython >= 3.11 with the GIL found; set FTSERVER_GIL_PYTHON" >&2
exit 1
