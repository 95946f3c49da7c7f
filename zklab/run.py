"""One command to watch a challenge: find or start a ZooKeeper, then run the challenge against it.

    ./run.sh leader [options]      # challenge_leader_election.py
    ./run.sh hashing [options]     # challenge_consistent_hashing.py
    ./run.sh smoke                 # connect, write and read an ephemeral znode, print the server

Where the ZooKeeper comes from, first that works: ZK_HOSTS; a server already answering on
127.0.0.1:2181; `docker compose up -d` where a Docker engine answers; else the local launcher,
which is stopped again when the challenge ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from zklab.launcher import ZooKeeperCluster, ZooKeeperMissing, server_mode

ROOT = Path(__file__).resolve().parent.parent
CHALLENGES = {"leader": "challenge_leader_election.py", "hashing": "challenge_consistent_hashing.py"}
DEFAULT_PORT = 2181


def _say(message: str) -> None:
    print(f"[run] {message}", flush=True)


# ---------------------------------------------------------------- finding a ZooKeeper

def _docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


def _compose_up(timeout: float = 60.0) -> str | None:
    """`docker compose up -d`, then wait for the server on 2181 to serve."""
    _say("starting ZooKeeper with `docker compose up -d`")
    compose = ["docker", "compose"] if subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                      timeout=20).returncode == 0 else ["docker-compose"]
    if subprocess.run([*compose, "up", "-d"], cwd=ROOT).returncode != 0:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_mode(DEFAULT_PORT):
            return f"127.0.0.1:{DEFAULT_PORT}"
        time.sleep(0.5)
    return None


def find_zookeeper() -> tuple[str, Callable[[], None]]:
    """Return (connection string, what to call when done)."""
    if os.environ.get("ZK_HOSTS"):
        _say(f"using ZK_HOSTS={os.environ['ZK_HOSTS']}")
        return os.environ["ZK_HOSTS"], lambda: None
    if server_mode(DEFAULT_PORT):
        _say(f"using the ZooKeeper already answering on 127.0.0.1:{DEFAULT_PORT}")
        return f"127.0.0.1:{DEFAULT_PORT}", lambda: None
    if _docker_engine_answers() and (hosts := _compose_up()):
        return hosts, lambda: None
    cluster = ZooKeeperCluster(servers=1).start()
    _say(f"started a local ZooKeeper ({cluster.servers[0].mode()}) on {cluster.hosts}; it stops when you do")
    return cluster.hosts, cluster.stop


# ---------------------------------------------------------------- running

def smoke(hosts: str) -> int:
    """Connect, create and read an ephemeral znode, and print what the server says of itself."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=hosts)
    client.start(timeout=10)
    try:
        path = client.create(f"/smoke-{uuid.uuid4().hex[:8]}", b"hello", ephemeral=True)
        data, stat = client.get(path)
        srvr = dict(line.split(": ", 1) for line in client.command(b"srvr").splitlines() if ": " in line)
        print(f"ok: wrote and read {path} = {data!r} (ephemeral owner 0x{stat.ephemeralOwner:x})")
        print(f"server: {srvr.get('Zookeeper version', '?').split(',')[0]}, mode {srvr.get('Mode', '?')}")
    finally:
        client.stop()
        client.close()
    return 0


def run_challenge(script: str, hosts: str, args: list[str]) -> int:
    """Run the challenge as a child; Ctrl-C reaches it too, and we wait while it cleans up."""
    proc = subprocess.Popen([sys.executable, str(ROOT / script), "--zk", hosts, *args], cwd=ROOT)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv.pop(0) if argv and not argv[0].startswith("-") else "leader"
    if name not in (*CHALLENGES, "smoke"):
        print(f"usage: run.sh [{'|'.join(CHALLENGES)}|smoke] [challenge options]", file=sys.stderr)
        return 2
    try:
        hosts, done = find_zookeeper()
    except (ZooKeeperMissing, RuntimeError, TimeoutError) as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 1
    try:
        return smoke(hosts) if name == "smoke" else run_challenge(CHALLENGES[name], hosts, argv)
    except KeyboardInterrupt:
        return 0
    finally:
        done()


if __name__ == "__main__":
    sys.exit(main())
