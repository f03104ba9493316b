"""Interpreters and virtual environments for the servers under test (and the chart step).

Each peer gets its own venv under ``bench/.venvs/<name>``, built on the interpreter its spec
names (``ft``: free-threaded 3.13t from ``ci/ft-python.sh``; ``gil``: from ``ci/gil-python.sh``).
A stamp of the requirements and the interpreter's ``-VV`` skips pip when nothing changed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
BASELINES = BENCH / ".base"
PIP_TIMEOUT_S = 900


class SetupError(Exception):
    """A venv could not be built or an interpreter found; the message is the reason shown."""


@dataclass(frozen=True)
class Env:
    """A ready virtual environment."""

    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name


def last_line(text: str) -> str:
    """The last non-blank line of a command's output, for one-line failure reasons."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


#: Interpreter kinds: ``ft`` (the quick 3.13t build the tests use), ``ft-pgo`` (3.13t built with PGO
#: and LTO, as uv and the distributions ship it: ``run.py --pgo``) and ``gil``.
KINDS = ("ft", "ft-pgo", "gil")
PGO_BUILD_TIMEOUT_S = 3 * 3600


@functools.cache
def interpreter(kind: str) -> Path:
    """The base interpreter of a kind (see ``KINDS``), found (or built) by the project's CI scripts."""
    script = REPO / "ci" / f"{'gil' if kind == 'gil' else 'ft'}-python.sh"
    env = {**os.environ, "FTSERVER_FT_PGO": "1" if kind == "ft-pgo" else "0"}
    timeout = PGO_BUILD_TIMEOUT_S if kind == "ft-pgo" else 1200
    try:
        done = subprocess.run(["bash", str(script)], check=False, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{script.name} timed out") from exc
    if done.returncode != 0:
        raise SetupError(f"{script.name}: {last_line(done.stderr)}")
    return Path(done.stdout.strip())


@functools.cache
def describe(python: Path) -> str:
    """``python -VV`` of an interpreter (one line)."""
    done = subprocess.run([str(python), "-VV"], check=False, capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or done.stderr.strip()


def ensure_venv(name: str, kind: str, requirements: tuple[str, ...]) -> Env:
    """Create or reuse ``bench/.venvs/<name>`` (``<name>-pgo`` on ``ft-pgo``) on the ``kind``
    interpreter with ``requirements``."""
    base = interpreter(kind)
    env = Env(VENVS / (f"{name}-pgo" if kind == "ft-pgo" else name))
    stamp_file = env.path / ".bench-stamp"
    stamp = hashlib.sha256("\n".join([describe(base), *requirements]).encode()).hexdigest()[:16]
    if env.python.exists() and stamp_file.exists() and stamp_file.read_text().strip() == stamp:
        return env
    print(f"  building venv {env.path.relative_to(REPO)} ({' '.join(requirements)})", flush=True)
    shutil.rmtree(env.path, ignore_errors=True)
    _run_setup([str(base), "-m", "venv", str(env.path)], f"venv {name}")
    if requirements:
        _run_setup(
            [str(env.python), "-m", "pip", "install", "-q", "--prefer-binary", *requirements],
            f"pip install {' '.join(requirements)}",
        )
    stamp_file.write_text(stamp + "\n")
    return env


def _run_setup(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{what} timed out after {PIP_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise SetupError(f"{what} failed: {errors[0] if errors else last_line(done.stderr)}")


def baseline_tree(rev: str) -> tuple[str, Path]:
    """The short sha of git revision ``rev`` and a folder whose only entry is its ``ftserver`` package.

    The revision is checked out as a detached worktree ``bench/.base/<short-sha>`` (reused if
    present); ``bench/.base/<short-sha>-import/ftserver`` links to its package, so that putting
    the folder first on PYTHONPATH swaps ftserver alone and the apps still come from this tree.
    """
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "--verify", f"{rev}^{{commit}}"],
        check=False, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        raise SetupError(f"--baseline {rev}: {last_line(done.stderr)}")
    short = done.stdout.strip()
    tree, folder = BASELINES / short, BASELINES / f"{short}-import"
    if not tree.exists():
        print(f"  checking out {rev} ({short}) in {tree.relative_to(REPO)}", flush=True)
        # -f: also when a removed worktree of that path is still registered
        _run_setup(["git", "-C", str(REPO), "worktree", "add", "-f", "--detach", str(tree), short], "git worktree add")
    folder.mkdir(exist_ok=True)
    link = folder / "ftserver"
    if not link.is_symlink():
        link.symlink_to(Path("..") / short / "ftserver")
    return short, folder


def distribution_version(env: Env, distribution: str) -> str | None:
    """The installed version of ``distribution`` in ``env``, or None."""
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    done = subprocess.run([str(env.python), "-c", code], check=False, capture_output=True, text=True, timeout=60)
    return done.stdout.strip() if done.returncode == 0 else None


def gil_enabled_after_import(env: Env, modules: tuple[str, ...]) -> bool | None:
    """Whether importing ``modules`` turned the GIL on (None: a GIL build, or the import failed).

    A C extension not marked free-threading-safe re-enables the GIL with only a warning.
    """
    code = (
        "import importlib, sys, sysconfig\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sys._is_gil_enabled() if sysconfig.get_config_var('Py_GIL_DISABLED') else 'none')\n"
    )
    done = subprocess.run([str(env.python), "-c", code], check=False, capture_output=True, text=True, timeout=120)
    answer = done.stdout.strip()
    return None if done.returncode != 0 or answer == "none" else answer == "True"
