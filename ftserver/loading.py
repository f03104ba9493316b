"""Import the application from a ``module:attribute`` string, with readable errors."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


class AppLoadError(Exception):
    """The application could not be imported; the message says what to fix."""


def import_app(target: str, *, factory: bool = False, app_dir: str | None = None) -> Callable[..., Any]:
    """Import ``module:attribute`` (attribute may be dotted); call it when ``factory``."""
    module_name, _, attr_path = target.partition(":")
    if not module_name or not attr_path:
        raise AppLoadError(f'Import string "{target}" must be in format "<module>:<attribute>".')
    if app_dir is not None and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise  # the module exists but something it imports does not: the app's own bug
        raise AppLoadError(f'Could not import module "{module_name}" (from app "{target}").') from None
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f'Attribute "{attr_path}" not found in module "{module_name}".') from None
    if factory:
        if not callable(obj):
            raise AppLoadError(f'App factory "{target}" is not callable.')
        try:
            obj = obj()
        except TypeError as exc:
            raise AppLoadError(f'App factory "{target}" must be callable without arguments: {exc}') from None
    if not callable(obj) and not hasattr(obj, "__rsgi__"):  # an RSGI app is any object with __rsgi__
        hint = " (did you mean --factory?)" if not factory else ""
        raise AppLoadError(f'App "{target}" is not callable{hint}.')
    return obj
