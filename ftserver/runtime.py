"""What kind of interpreter we run on, and whether the GIL is (still) off."""

from __future__ import annotations

import re
import sys
import sysconfig
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

_GIL_WARNING = re.compile(r"GIL\) has been enabled to load module '([^']+)'")


def free_threaded_build() -> bool:
    """True on a free-threaded ("t") build of CPython, whether or not the GIL is on now."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """True when the GIL is on (always on a regular build)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def python_build() -> str:
    impl = sys.implementation.name
    version = ".".join(map(str, sys.version_info[:3]))
    return f"{'CPython' if impl == 'cpython' else impl} {version}{'t' if free_threaded_build() else ''}"


@dataclass
class GILReport:
    """The GIL state before and after importing the application."""

    before: bool
    after: bool
    #: Modules CPython named when it turned the GIL back on (from its RuntimeWarning).
    culprits: list[str] = field(default_factory=list)

    @property
    def reenabled(self) -> bool:
        return self.after and not self.before

    def describe(self) -> str:
        if not free_threaded_build():
            return "GIL enabled (regular CPython build)"
        if self.reenabled:
            cause = ", ".join(self.culprits) if self.culprits else "an extension module"
            return f"GIL re-enabled while importing the app: {cause} is not free-threading safe"
        return "GIL enabled (PYTHON_GIL=1 or -X gil=1)" if self.after else "GIL disabled"

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what a worker or the probe sends the supervisor)."""
        return {"before": self.before, "after": self.after, "culprits": self.culprits}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GILReport:
        """The report :meth:`as_dict` made."""
        return cls(before=bool(data["before"]), after=bool(data["after"]), culprits=list(data.get("culprits") or []))


def watch_gil(load: Callable[[], T]) -> tuple[T, GILReport]:
    """Run ``load`` (the app import) and report whether it turned the GIL back on."""
    before = gil_enabled()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = load()
    culprits = []
    for w in caught:
        match = _GIL_WARNING.search(str(w.message))
        if match:
            culprits.append(match.group(1))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return result, GILReport(before=before, after=gil_enabled(), culprits=culprits)
