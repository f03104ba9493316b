#!/usr/bin/env bash
# Run the whole test suite on the free-threaded interpreter and on a GIL interpreter.
# Extra arguments go to pytest (e.g. ci/test.sh -k http11).
set -uo pipefail
cd "$(dirname "$0")/.."
bash ci/venvs.sh ft gil || exit 1
bash ci/stress-tools.sh  # h2load/nghttp for the HTTP/2 tests (they skip without them)
bash ci/deploy-tools.sh  # REDbot and hadolint in .venv/tools (their tests skip without them)

status=0
for env in ft gil; do
    py=.venv/$env/bin/python
    echo "=== tests on $env: $($py -VV | head -n1) ==="
    $py -m pytest -n auto -p no:cacheprovider "$@"
    rc=$?
    if [ $rc -eq 5 ]; then
        echo "no tests collected on $env"; status=1
    elif [ $rc -ne 0 ]; then
        status=$rc
    fi
done
exit $status
