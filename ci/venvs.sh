#!/usr/bin/env bash
# Create (or refresh) the two test environments: .venv/ft (free-threaded 3.13t) and
# .venv/gil (a GIL build), each with ftserver installed editable plus the test extras.
# A stamp of pyproject.toml's hash skips the pip step when nothing changed.
# Usage: ci/venvs.sh [ft] [gil]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
stamp_of() { { cat pyproject.toml; "$1" -VV; } | sha256sum | cut -c1-16; }

make_venv() {  # name python
    local dir=.venv/$1 py=$2
    local want; want=$(stamp_of "$py")
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "venvs: creating $dir from $py" >&2
    rm -rf "$dir"
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip >&2
    # Some newest releases (pydantic-core, hypothesis) ship only Rust sources for cp313t and the crates
    # registry is unreachable: take the newest binary build instead.
    "$dir/bin/python" -m pip install -q --prefer-binary --only-binary=pydantic-core,hypothesis -e ".[test]" >&2
    echo "$want" > "$dir/.stamp"
}

which=("$@")
[ ${#which[@]} -gt 0 ] || which=(ft gil)
for name in "${which[@]}"; do
    case $name in
        ft) make_venv ft "$(bash ci/ft-python.sh)" ;;
        gil) make_venv gil "$(bash ci/gil-python.sh)" ;;
        *) echo "venvs: unknown environment $name (ft or gil)" >&2; exit 2 ;;
    esac
done
