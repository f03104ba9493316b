"""Real-framework apps for the benchmark: what most users run, rather than a bare app.

Each module builds one app at import (``bench.frameworks.<module>:app``); the scenarios in
``bench/scenarios.py`` request one route of it. The frameworks are installed into every
server's venv (``servers.APP_REQUIREMENTS``).
"""
