"""pytest plugin (entry point ``ftserver``): the ``ftserve_app`` fixture.

``ftserve_app`` is a factory: call it with an app (and ``Config`` options) to start a
server on a free port; every server it started is stopped at the end of the test.

    def test_hello(ftserve_app):
        server = ftserve_app(app, threads=2)
        assert httpx.get(server.url).status_code == 200

``ftserver`` is the same fixture under its first name (it shadows the package's name in a
test module, hence the new one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def ftserve_app() -> Iterator[Callable[..., Any]]:
    from ftserver.testing import serve

    with contextlib.ExitStack() as stack:

        def start(app: Any, **options: Any) -> Any:
            return stack.enter_context(serve(app, **options))

        yield start


@pytest.fixture
def ftserver(ftserve_app: Callable[..., Any]) -> Callable[..., Any]:
    """The ``ftserve_app`` fixture under its former name."""
    return ftserve_app
