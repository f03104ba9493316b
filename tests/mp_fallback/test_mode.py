"""Mode selection: threads or processes, from the build, the GIL after the app import, and
the options; the worker processes it leads to, counted with psutil."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import psutil
import pytest

from ftserver.config import Config, ConfigError, WorkerPlan
from ftserver.mp_fallback.heartbeat import Heartbeat
from tests.ftserve_process import FREE_THREADED, FTSERVE, ROOT, get

# -- the layout rule (Config.plan) ---------------------------------------------------------


@pytest.mark.parametrize(
    "options,gil,plan",
    [
        ({"threads": 8}, False, WorkerPlan("threads", 1, 8)),
        ({"threads": 8}, True, WorkerPlan("processes", 8, 1)),  # the GIL build rule
        ({"threads": 8, "mode": "threads"}, True, WorkerPlan("threads", 1, 8)),
        ({"threads": 8, "mode": "processes"}, False, WorkerPlan("processes", 8, 1)),
        ({"workers": 3}, False, WorkerPlan("processes", 3, 1)),
        ({"workers": 3}, True, WorkerPlan("processes", 3, 1)),
        ({"workers": 2, "threads": 4}, True, WorkerPlan("processes", 2, 4)),
        ({"workers": 1, "threads": 4, "mode": "threads"}, True, WorkerPlan("threads", 1, 4)),
    ],
)
def test_plan(options, gil, plan):
    assert Config(app="m:a", **options).plan(gil_enabled=gil) == plan


def test_threads_default_is_one_per_process_with_workers():
    assert Config(app="m:a", workers=4).threads == 1
    assert Config(app="m:a").threads >= 1


@pytest.mark.parametrize(
    "options,message",
    [
        ({"mode": "threads", "workers": 2}, "cannot run in --mode threads"),
        ({"mode": "fibers"}, "mode: must be one of auto, threads, processes"),
        ({"workers": 0}, "workers: must be at least 1"),
        ({"supervisor": False, "mode": "processes"}, "worker processes need the supervisor"),
        ({"supervisor": False, "max_requests": 10}, "--max-requests needs the supervisor"),
        ({"supervisor": False, "workers_max_rss": 100}, "--workers-max-rss needs the supervisor"),
        ({"heartbeat_timeout": 1}, "heartbeat_timeout: must be at least 2 seconds"),
        ({"max_requests": 0}, "max_requests: must be at least 1"),
        ({"workers_lifetime": 0.5}, "workers_lifetime: must be at least 1 second"),
        ({"pid_file": "/nonexistent-dir/ft.pid"}, "pid_file: '/nonexistent-dir/ft.pid' must be a file path in an existing directory"),
    ],
)
def test_bad_combinations_are_refused_clearly(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Config(app="m:a", **options)


# -- the real server -----------------------------------------------------------------------


def _threads_of(pid: int) -> int:
    return psutil.Process(pid).num_threads()


def test_threads_become_processes_on_a_gil_build(ftserve):
    """`--threads 3`: one worker of 3 threads with the GIL off, 3 workers of 1 thread with it on."""
    served = ftserve("--threads", "3")
    if FREE_THREADED:
        (worker,) = served.wait_workers(1)
        assert "mode: threads | 3 threads" in served.output
        assert _threads_of(worker) >= 4  # 3 loops + the main thread (+ the acceptor)
    else:
        workers = served.wait_workers(3)
        assert "mode: processes | 3 workers x 1 thread" in served.output
        assert "Regular (GIL) build of CPython: running 3 workers x 1 thread (--mode auto)" in served.output
        assert {int(get(served.port)[1]) for _ in range(30)} <= workers


def test_mode_processes(ftserve):
    served = ftserve("--mode", "processes", "--threads", "2")
    workers = served.wait_workers(2)
    assert "mode: processes | 2 workers x 1 thread" in served.output
    pids = {int(get(served.port)[1]) for _ in range(40)}
    assert pids <= workers


def test_workers_times_threads(ftserve):
    served = ftserve("--workers", "2", "--threads", "2")
    workers = served.wait_workers(2)
    assert "2 workers x 2 threads" in served.output
    for pid in workers:
        assert _threads_of(pid) >= 3


@pytest.mark.skipif(not FREE_THREADED, reason="PYTHON_GIL=1 only means something on a free-threaded build")
def test_python_gil_1_means_processes_in_auto_mode(ftserve):
    served = ftserve("--threads", "2", env={"PYTHON_GIL": "1"})
    served.wait_workers(2)
    assert "mode: processes | 2 workers x 1 thread" in served.output
    assert "GIL enabled (PYTHON_GIL=1 or -X gil=1): running 2 workers x 1 thread (--mode auto" in served.output


def _build_gil_extension(directory) -> None:
    """A C extension that does not declare Py_mod_gil: importing it turns the GIL back on."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    source = directory / "gilext.c"
    source.write_text(
        textwrap.dedent(
            """
            #include <Python.h>
            static struct PyModuleDef_Slot slots[] = {{0, NULL}};
            static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "gilext", NULL, 0, NULL, slots};
            PyMODINIT_FUNC PyInit_gilext(void) { return PyModuleDef_Init(&def); }
            """
        )
    )
    target = directory / f"gilext{sysconfig.get_config_var('EXT_SUFFIX')}"
    include = sysconfig.get_path("include")
    done = subprocess.run([compiler, "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.skip(f"could not build the test extension: {done.stderr[-500:]}")
    (directory / "gilapp.py").write_text("import gilext\nfrom tests.apps.lifecycle import app\n")


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded build")
def test_module_that_turns_the_gil_on_means_processes(ftserve, tmp_path):
    _build_gil_extension(tmp_path)
    served = ftserve("--threads", "2", "--app-dir", str(tmp_path), app="gilapp:app")
    workers = served.wait_workers(2)
    assert "GIL re-enabled while importing the app: gilext is not free-threading safe: running 2 workers x 1 thread" in served.output
    assert "mode: processes" in served.output
    assert int(get(served.port)[1]) in workers


def _counting_app(directory, base: str = "tests.apps.lifecycle") -> Path:
    """``countapp:app``, which writes the pid of each process importing it to the file returned."""
    imports = directory / "imports.txt"
    (directory / "countapp.py").write_text(
        f"import os\nwith open({str(imports)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\nfrom {base} import app\n"
    )
    return imports


def test_auto_mode_imports_the_app_once_per_worker(ftserve, tmp_path):
    """Before, --mode auto on 3.13t imported the app in a probe process first, to learn
    whether the import turns the GIL on: import-time side effects ran twice."""
    imports = _counting_app(tmp_path)
    served = ftserve("--threads", "2", "--app-dir", str(tmp_path), app="countapp:app")
    workers = served.wait_workers(1 if FREE_THREADED else 2)
    assert get(served.port)[0] == 200
    pids = [int(line) for line in imports.read_text().split()]
    assert sorted(pids) == sorted(workers)  # each worker once, nobody else


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded build")
def test_the_first_worker_decides_processes_and_imports_once(ftserve, tmp_path):
    _build_gil_extension(tmp_path)
    (tmp_path / "gilapp.py").write_text("import gilext\nfrom countapp import app\n")
    imports = _counting_app(tmp_path)
    served = ftserve("--threads", "3", "--app-dir", str(tmp_path), app="gilapp:app")
    workers = served.wait_workers(3)
    served.wait_log("mode: processes | 3 workers x 1 thread")
    pids = [int(line) for line in imports.read_text().split()]
    assert sorted(pids) == sorted(workers)
    for pid in workers:
        assert _threads_of(pid) <= 3  # one loop (+ the main thread and the acceptor)


def test_a_first_worker_running_fewer_threads_is_not_taken_for_a_wedged_one():
    """Its heartbeat has a slot per planned thread; the slots of threads it does not run
    would stay at 0.0 (never beaten) and the supervisor would replace it."""
    heartbeat = Heartbeat(3)
    struct.pack_into("d", heartbeat.memory, 0, 5.0)
    assert heartbeat.oldest() == 0.0
    heartbeat.resize(1)
    assert heartbeat.oldest() == 5.0
    heartbeat.close()


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded build")
def test_mode_threads_keeps_threads_and_warns(ftserve, tmp_path):
    _build_gil_extension(tmp_path)
    served = ftserve("--threads", "2", "--mode", "threads", "--app-dir", str(tmp_path), app="gilapp:app")
    served.wait_workers(1)
    served.wait_log(r"gilext is not free-threading safe.*will not run Python code in parallel")


def test_no_supervisor_serves_in_process(ftserve):
    served = ftserve("--no-supervisor", "--threads", "2")
    assert served.workers() == set()
    assert int(get(served.port)[1]) == served.pid
    assert "mode: threads" in served.output


def test_no_supervisor_refuses_supervisor_options():
    done = subprocess.run([*FTSERVE, "--no-supervisor", "--max-requests", "10", "tests.apps.lifecycle:app"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "--max-requests needs the supervisor" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("preload", [False, True])
def test_preload_imports_the_app_in_the_supervisor(ftserve, preload):
    served = ftserve("--workers", "2", *(["--preload"] if preload else []))
    workers = served.wait_workers(2)
    importer = int(get(served.port, "/imported")[1])
    if preload:
        assert importer == served.pid
    else:
        assert importer in workers


def test_unix_socket_with_processes(ftserve, tmp_path):
    import httpx

    path = str(tmp_path / "ft.sock")
    served = ftserve("--workers", "2", "--uds", path)
    workers = served.wait_workers(2)
    with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
        pids = {int(client.get("http://ft/", headers={"connection": "close"}).text) for _ in range(20)}
    assert pids <= workers
    assert served.stop() == 0
    assert not (tmp_path / "ft.sock").exists()


def test_reuseport_with_processes(ftserve):
    served = ftserve("--workers", "2", "--accept", "reuseport")
    workers = served.wait_workers(2)
    pids = {int(get(served.port)[1]) for _ in range(60)}
    assert pids == workers  # the kernel spreads connections over both workers' listeners


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names the process through /proc/self/comm")
def test_workers_are_named_for_ps(ftserve):
    served = ftserve("--workers", "2")
    for pid in served.wait_workers(2):
        assert psutil.Process(pid).name() == "ftserve worker"
    assert psutil.Process(served.pid).name() != "ftserve worker"
    assert Path(f"/proc/{served.pid}/comm").read_text() == "ftserve master\n"
    for pid in served.workers():
        assert Path(f"/proc/{pid}/comm").read_text() == "ftserve worker\n"
