"""--threads' default respects a container's CPU quota (cgroup v2 cpu.max, v1 cfs quota)."""

from __future__ import annotations

import pytest

from ftserver.config import Config, cgroup_cpu_quota


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("own", "parent", "expected"),
    [
        ("max 100000\n", None, None),  # unlimited
        ("150000 100000\n", None, 1.5),  # docker --cpus 1.5
        ("max 100000\n", "200000 100000\n", 2.0),  # the limit on an ancestor counts
        ("300000 100000\n", "100000 100000\n", 1.0),  # the lowest wins
    ],
)
def test_cgroup_v2(tmp_path, own, parent, expected):
    _write(tmp_path / "proc", "0::/system.slice/app.service\n")
    _write(tmp_path / "cg/system.slice/app.service/cpu.max", own)
    if parent is not None:
        _write(tmp_path / "cg/system.slice/cpu.max", parent)
    assert cgroup_cpu_quota(str(tmp_path / "cg"), str(tmp_path / "proc")) == expected


def test_cgroup_v1(tmp_path):
    _write(tmp_path / "proc", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    _write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n")
    _write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(str(tmp_path / "cg"), str(tmp_path / "proc")) == 2.5
    _write(tmp_path / "cg/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_quota(str(tmp_path / "cg"), str(tmp_path / "proc")) is None


def test_no_cgroup_files(tmp_path):
    assert cgroup_cpu_quota(str(tmp_path / "none"), str(tmp_path / "none")) is None


def test_config_says_where_the_thread_count_came_from(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr("ftserver.config.cgroup_cpu_quota", lambda: None)
    assert Config(app="m:a").threads_from in ("the CPU affinity", "the CPU count")
    monkeypatch.setattr("ftserver.config.cgroup_cpu_quota", lambda: 0.5)
    config = Config(app="m:a")
    assert (config.threads, config.threads_from) == (1, "the cgroup CPU quota (0.5 CPUs)")
    assert config.replace(port=0).threads_from == config.threads_from  # kept through replace()
    assert Config(app="m:a", workers=2).threads_from == "the default with --workers"
    assert Config(app="m:a", threads=3).threads_from == "the threads option"
    assert Config(app="m:a", threads=3, threads_from="--threads").threads_from == "--threads"
