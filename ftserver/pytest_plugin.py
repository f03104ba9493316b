"""pytest plugin (entry point ``ftserver``): the ``ftserver`` fixture.

``ftserver`` is a factory: call it with an app (and ``Config`` options) to start a
server on a free port; every server it started is stopped at the end of the test.

    def test_hello(ftserver):
        server = ftserver(app, threads=2)
        assert httpx.get(server.url).status_code == 200

To parametrize, use ``@pytest.mark.parametrize`` on the test and pass the values on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture
def ftserver() -> Iterator[Callable[..., Any]]:
    from ftserver.testing import serve

    with contextlib.ExitStack() as stack:

        def start(app: Any, **options: Any) -> Any:
            return stack.enter_context(serve(app, **options))

        yield start
