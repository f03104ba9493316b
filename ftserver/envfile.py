"""``--env-file``: environment variables for the application, read from a dotenv file.

The syntax of python-dotenv's common subset: ``NAME=value`` lines, an optional ``export ``
prefix, ``#`` comments, values in single quotes (taken as written) or double quotes
(``\\n``, ``\\t``, ``\\"`` and ``\\\\`` escapes), ``${NAME}`` expanded in unquoted and
double-quoted values. Variables already set in the environment win, as with python-dotenv.
"""

from __future__ import annotations

import os
import re

_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*?)\s*")
_EXPAND = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class EnvFileError(ValueError):
    """A line of the file is not ``NAME=value``; the message names the line."""


def parse_env_file(path: str) -> dict[str, str]:
    """The variables a dotenv file sets, in order (raises ``OSError``, ``EnvFileError``)."""
    values: dict[str, str] = {}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            match = _LINE.fullmatch(line.rstrip("\r\n"))
            if match is None:
                raise EnvFileError(f"{path}, line {number}: not NAME=value: {stripped[:60]!r}")
            values[match[1]] = _value(match[2], values, path, number)
    return values


def _value(raw: str, known: dict[str, str], path: str, number: int) -> str:
    if raw[:1] == "'":
        if len(raw) < 2 or not raw.endswith("'"):
            raise EnvFileError(f"{path}, line {number}: unterminated single quote")
        return raw[1:-1]
    if raw[:1] == '"':
        end = _closing_quote(raw)
        if end < 0:
            raise EnvFileError(f"{path}, line {number}: unterminated double quote")
        text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], "\\" + m[1]), raw[1:end])
        return _expand(text, known)
    value = re.split(r"\s+#", raw, maxsplit=1)[0].rstrip()  # an unquoted value ends at " #"
    return _expand(value, known)


def _closing_quote(raw: str) -> int:
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            return index
        index += 1
    return -1


def _expand(text: str, known: dict[str, str]) -> str:
    return _EXPAND.sub(lambda m: os.environ.get(m[1], known.get(m[1], "")), text)


def load_env_file(path: str) -> int:
    """Set the file's variables that the environment does not have yet; return how many."""
    count = 0
    for name, value in parse_env_file(path).items():
        if name not in os.environ:
            os.environ[name] = value
            count += 1
    return count
