"""The files of ``deploy/`` (docs/deployment.md): the systemd units, the Dockerfile and the
Kubernetes manifest parse, and say what the docs say they do.

Where the real tool is at hand it checks them too: ``systemd-analyze verify`` for the
units, ``hadolint`` for the Dockerfile (``HADOLINT``, on PATH, or in ``.venv/tools`` where
``ci/deploy-tools.sh`` installs it), PyYAML (this interpreter's or the system
``python3``'s) for the manifest.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ftserver.config import Config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SERVICE = DEPLOY / "systemd" / "ftserve.service"
SOCKET = DEPLOY / "systemd" / "ftserve.socket"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
MANIFEST = DEPLOY / "kubernetes" / "ftserve.yaml"
#: ci/deploy-tools.sh installs hadolint here.
TOOLS = DEPLOY.parent / ".venv" / "tools" / "bin"
HADOLINT = os.environ.get("HADOLINT") or shutil.which("hadolint") or shutil.which("hadolint", path=str(TOOLS))


# -- systemd -------------------------------------------------------------------------------


def unit(path: Path) -> configparser.ConfigParser:
    """A unit file read as systemd reads it, near enough: sections of ``Key=value`` lines,
    keys case-sensitive, a key given twice kept as its last value."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def environment(service: configparser.ConfigParser) -> dict[str, str]:
    """The ``Environment=`` assignments of the unit (each line one ``NAME=value``)."""
    lines = [line for line in SERVICE.read_text().splitlines() if line.startswith("Environment=")]
    return dict(line.removeprefix("Environment=").split("=", 1) for line in lines)


def test_service_unit() -> None:
    service = unit(SERVICE)
    assert set(service.sections()) == {"Unit", "Service", "Install"}
    s = service["Service"]
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    argv = shlex.split(s["ExecStart"])
    assert argv[0].endswith("/ftserve") and re.fullmatch(r"[\w.]+:\w+", argv[-1])
    # No address: the socket comes from ftserve.socket.
    assert not {"--host", "--port", "--uds", "--fd"} & set(argv)
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["KillMode"] == "mixed" and s["KillSignal"] == "SIGTERM"
    assert int(s["WatchdogSec"]) > 0
    env = environment(service)
    # TimeoutStopSec covers the drain and the graceful stop (and the workers' 10 s more).
    assert int(s["TimeoutStopSec"]) >= float(env["FTSERVE_DRAIN_DELAY"]) + float(env["FTSERVE_TIMEOUT_GRACEFUL_SHUTDOWN"]) + 10
    assert service["Unit"]["Requires"] == "ftserve.socket"
    assert service["Install"]["WantedBy"] == "multi-user.target"


def test_socket_unit() -> None:
    socket_unit = unit(SOCKET)
    s = socket_unit["Socket"]
    assert s["ListenStream"] == "8000"
    assert s["FileDescriptorName"] == "ftserve"  # the name ftserve picks among several
    assert s.get("Accept", "no") == "no"  # one service for all connections, not one per connection
    assert int(s["Backlog"]) == Config(app="a:b").backlog
    assert socket_unit["Install"]["WantedBy"] == "sockets.target"


def test_environment_names_are_options() -> None:
    """Every FTSERVE_* variable the deploy files set is an ftserve option."""
    text = SERVICE.read_text() + MANIFEST.read_text() + DOCKERFILE.read_text()
    names = set(re.findall(r"FTSERVE_(\w+)", text))
    assert names
    assert names <= {name.upper() for name in Config.option_names()}, names - {name.upper() for name in Config.option_names()}


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify wants ExecStart's program to exist: any executable stands in for ftserve.
    (tmp_path / "ftserve.socket").write_text(SOCKET.read_text())
    text = SERVICE.read_text()
    executable = shlex.split(unit(SERVICE)["Service"]["ExecStart"])[0]
    (tmp_path / "ftserve.service").write_text(text.replace(executable, shutil.which("true") or "/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "ftserve.socket", "ftserve.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# -- Docker --------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "a continuation line ends the file"
    return instructions


def test_dockerfile() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    known = {"FROM", "RUN", "COPY", "ENV", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "CMD", "ARG", "LABEL"}
    assert {keyword for keyword, _ in instructions} <= known
    by_keyword: dict[str, list[str]] = {}
    for keyword, args in instructions:
        by_keyword.setdefault(keyword, []).append(args)
    for image in by_keyword["FROM"]:
        assert re.match(r"[\w./-]+:[\w.-]+( AS \w+)?$", image), f"FROM without a pinned tag: {image}"
    assert any("uv python install 3.13t" in run for run in by_keyword["RUN"])
    # The runtime stage (after the last FROM) runs as a numeric non-root user.
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [args for keyword, args in instructions[last_from:] if keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    assert by_keyword["STOPSIGNAL"] == ["SIGTERM"]
    assert by_keyword["EXPOSE"] == ["8000"]
    cmd = json.loads(by_keyword["CMD"][-1])  # exec form: ftserve is PID 1 and gets SIGTERM
    assert cmd[0] == "ftserve" and re.fullmatch(r"[\w.]+:\w+", cmd[-1])
    healthcheck = by_keyword["HEALTHCHECK"][-1]
    probe = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "HEALTHCHECK", "exec")


@pytest.mark.skipif(not HADOLINT, reason="hadolint is not installed (ci/deploy-tools.sh)")
def test_hadolint() -> None:
    assert HADOLINT is not None
    result = subprocess.run([HADOLINT, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- Kubernetes ----------------------------------------------------------------------------


def manifest_documents() -> list[dict[str, Any]]:
    """The manifest's documents, parsed by PyYAML here or by the system python3's."""
    try:
        import yaml
    except ImportError:
        python = shutil.which("python3")
        if python is None or Path(python).resolve() == Path(sys.executable).resolve():
            pytest.skip("PyYAML is not installed")
        code = "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))"
        result = subprocess.run([python, "-c", code], input=MANIFEST.read_text(), capture_output=True, text=True, timeout=60)
        if "No module named 'yaml'" in result.stderr:
            pytest.skip("PyYAML is not installed")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]
    return list(yaml.safe_load_all(MANIFEST.read_text()))


def test_kubernetes_manifest() -> None:
    documents = {doc["kind"]: doc for doc in manifest_documents()}
    assert set(documents) == {"Deployment", "Service"}
    deployment, service = documents["Deployment"], documents["Service"]
    assert deployment["apiVersion"] == "apps/v1" and service["apiVersion"] == "v1"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    env = {item["name"]: item["value"] for item in container["env"]}
    assert int(env["FTSERVE_PORT"]) in port_names.values()
    assert env["FTSERVE_HOST"] == "0.0.0.0"
    drain = float(env["FTSERVE_DRAIN_DELAY"])
    grace = float(env.get("FTSERVE_TIMEOUT_GRACEFUL_SHUTDOWN", Config(app="a:b").timeout_graceful_shutdown))
    # Kubernetes kills the pod after terminationGracePeriodSeconds: the drain and the
    # graceful stop must fit in it.
    assert drain > 0 and pod["terminationGracePeriodSeconds"] > drain + grace
    probe = container["readinessProbe"]["httpGet"]
    assert probe["port"] in port_names or probe["port"] in port_names.values()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["args"][0] == "ftserve"
