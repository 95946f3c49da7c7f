"""The compose file's healthcheck, run exactly as written under dash, against a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from zklab.launcher import ZooKeeperCluster, free_ports

ROOT = Path(__file__).resolve().parent.parent
# The image's /bin/sh is dash, and Docker runs a CMD-SHELL test with /bin/sh -c: so do we.
DASH = shutil.which("dash") or "sh"


def _healthcheck(port: int) -> str:
    """The CMD-SHELL command from docker-compose.yml, aimed at `port` instead of 2181."""
    line = next(line for line in (ROOT / "docker-compose.yml").read_text().splitlines()
                if line.strip().startswith("test:"))
    kind, command = json.loads(line.split("test:", 1)[1])
    assert kind == "CMD-SHELL"
    return re.sub(r"\b2181\b", str(port), command)


def _check(port: int) -> int:
    return subprocess.run([DASH, "-c", _healthcheck(port)], capture_output=True, timeout=10).returncode


def test_healthcheck_passes_under_dash_while_the_server_serves(zk_server: ZooKeeperCluster) -> None:
    """The exact healthcheck, under dash, succeeds against a serving ZooKeeper."""
    assert _check(zk_server.servers[0].client_port) == 0


def test_healthcheck_fails_when_nothing_listens() -> None:
    """The same command fails when no server listens on the port."""
    assert _check(free_ports(1)[0]) != 0
