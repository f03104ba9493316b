"""Import the application from a ``module:attribute`` string, with readable errors."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any


class AppLoadError(Exception):
    """The application could not be imported; the message says what to fix."""


def import_app(target: str, *, factory: bool = False, app_dir: str | None = None) -> Callable[..., Any]:
    """Import ``module:attribute`` (attribute may be dotted); call it when ``factory``."""
    module_name, _, attr_path = target.partition(":")
    if not module_name or not attr_path:
        raise AppLoadError(f'Import string "{target}" must be in format "<module>:<attribute>".')
    if app_dir is not None and not os.path.isdir(app_dir):
        raise AppLoadError(f'--app-dir "{app_dir}" is not a directory (it does not exist, or is a file).')
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


class AppImportError(Exception):
    """The app's own code raised while being imported or built (a SyntaxError, an exception
    at import time): the message carries its traceback without ftserver's frames."""

    def __init__(self, target: object, exc: BaseException) -> None:
        super().__init__(f"could not load the app {target!r}:\n{format_app_error(exc)}")


def format_app_error(exc: BaseException) -> str:
    """``exc`` raised while importing or starting the app, as the app's developer wants it.

    The frames of ftserver, importlib, runpy and click that lead to the app's code are left
    out (a SyntaxError keeps just its file, line and caret). When the innermost frame is
    ftserver's own, the error is ours and the whole traceback is kept.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    ours = os.path.dirname(os.path.abspath(__file__)) + os.sep
    if frames and frames[-1].filename.startswith(ours):
        return "".join(traceback.format_exception(exc))
    machinery = [ours, importlib.__file__.rpartition(os.sep)[0] + os.sep, "<frozen "]
    for name in ("runpy", "click"):
        module = sys.modules.get(name)
        if module is not None and module.__file__:
            path = module.__file__
            machinery.append(path.rpartition(os.sep)[0] + os.sep if path.endswith("__init__.py") else path)
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(tuple(machinery)):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))
