.PHONY: demo test test-fast test-stress test-stress-quick test-ws bench venvs

# Serve examples/hello.py on 127.0.0.1:8000 with the free-threaded interpreter (built if needed).
demo:
	bash ci/venvs.sh ft
	.venv/ft/bin/ftserve --threads 2 --host 127.0.0.1 --port 8000 --access-log examples.hello:app

# The whole suite, on 3.13t and on a GIL interpreter.
test:
	bash ci/test.sh

# The suite without the slow/stress tests.
test-fast:
	bash ci/test.sh -m "not slow"

venvs:
	bash ci/venvs.sh

# ftserve vs Uvicorn/Granian/Hypercorn on 3.13t: bare apps, TLS, HTTP/2, WebSocket, metrics, frameworks (~30 min); results in bench/results/latest.*
bench:
	bash ci/venvs.sh ft
	python3 bench/run.py $(BENCH_ARGS)

# Hostile clients against real ftserve processes (tests/stress/, docs/stress.md): ~3 min; not in `make test`.
test-stress:
	bash ci/venvs.sh ft
	bash ci/stress-tools.sh
	.venv/ft/bin/python tests/stress/run.py $(STRESS_ARGS)

# The short version (< 60 s), meant for CI.
test-stress-quick:
	bash ci/venvs.sh ft
	bash ci/stress-tools.sh
	.venv/ft/bin/python tests/stress/run.py --quick $(STRESS_ARGS)

# Autobahn|Testsuite cases against ftserve's WebSocket, through kosoku (in its own GIL venv:
# it ships an abi3 wheel only), all sections including 12/13 (permessage-deflate): ~5-15 min.
test-ws:
	bash ci/venvs.sh ft
	test -x .venv/kosoku/bin/kosoku || (python3 -m venv .venv/kosoku && .venv/kosoku/bin/pip install -q kosoku)
	.venv/ft/bin/python -m tests.stress.autobahn --kosoku .venv/kosoku/bin/kosoku --sections all $(WS_ARGS)
