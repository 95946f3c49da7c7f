"""One command for the lab: find (or start, or install) a ZooKeeper, then run a challenge against it.

    ./run.sh leader [--yes] [options]   # challenge_leader_election.py
    ./run.sh hashing [--yes] [options]  # challenge_consistent_hashing.py
    ./run.sh smoke [--yes]              # connect, write and read an ephemeral znode, print the server
    ./run.sh zk start|status|stop|kill N|pause N|resume N|restart N   # a ZooKeeper every terminal shares
    ./run.sh tree [PATH]                # the znodes, live
    ./run.sh check | exercise | soak    # the checker, the exercises, the chaos soak (they start their own)

Where the ZooKeeper comes from, first that works: ZK_HOSTS; the lab's shared servers (`./run.sh zk
start`), else a server already answering on 127.0.0.1:2181 (ZKLAB_PORT moves that port); `docker
compose up -d` where a Docker engine answers; else the local launcher, which is stopped again when the
challenge ends. When even that finds no ZooKeeper, it offers to install one (`--yes`: without asking).
"""

from __future__ import annotations

import _signal  # `signal` without its enums: the guard below starts sooner

# ruff: noqa: E402  (the guard below must run before the imports, which take a moment)
import os

# Ctrl-C while Python is still loading the lab: nothing started yet, so leave at once and quietly.
# main() puts Python's KeyboardInterrupt back once the imports are done. (An ignored SIGINT, as in
# a background job, stays ignored.)
_GUARDED = __name__ == "__main__" and _signal.getsignal(_signal.SIGINT) != _signal.SIG_IGN
if _GUARDED:
    _signal.signal(_signal.SIGINT, lambda *_: os._exit(130))

import importlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from zklab import install, zk
from zklab.launcher import ZooKeeperCluster, ZooKeeperMissing, server_mode

ROOT = Path(__file__).resolve().parent.parent
CHALLENGES = {"leader": "challenge_leader_election.py", "hashing": "challenge_consistent_hashing.py"}
# Commands that need no ZooKeeper from us: each starts its own, or is about ZooKeeper itself.
MODULES = {"check": "zklab.check", "exercise": "zklab.exercise", "soak": "bench.soak", "zk": "zklab.zk",
           "tree": "zklab.tree"}
DEFAULT_PORT = 2181  # the compose file's port, and where a server the learner started usually is
# Kazoo's reconnect delay grows without bound by default; capped, a client is back within half a
# second of its server (CONTRACTS A).
RECONNECT_RETRY = {"max_tries": -1, "max_delay": 0.5}
USAGE = (f"usage: run.sh [{'|'.join(CHALLENGES)}|smoke] [--yes] [challenge options]\n"
         f"       run.sh {'|'.join(MODULES)} ...   (./run.sh zk --help, ./run.sh tree --help)")


def _say(message: str) -> None:
    print(f"[run] {message}", flush=True)


def _default_port() -> int:
    return zk.base_port() if os.environ.get("ZKLAB_PORT") else DEFAULT_PORT


# ---------------------------------------------------------------- finding a ZooKeeper

def _docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):  # an engine that does not answer in 20 s is no engine
        return False


def _compose_up(timeout: float = 60.0) -> str | None:
    """`docker compose up -d`, then wait for the server on 2181 (the compose file's port) to serve."""
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


def existing_zookeeper() -> str | None:
    """Steps 1 and 2 of the search, which start nothing: ZK_HOSTS, the shared servers, the default port."""
    if os.environ.get("ZK_HOSTS"):
        _say(f"using ZK_HOSTS={os.environ['ZK_HOSTS']}")
        return os.environ["ZK_HOSTS"]
    if hosts := zk.shared_hosts():
        _say(f"using the lab's shared ZooKeeper at {hosts} (`./run.sh zk status` shows it)")
        return hosts
    port = _default_port()
    if server_mode(port):
        _say(f"using the ZooKeeper already answering on 127.0.0.1:{port}")
        return f"127.0.0.1:{port}"
    return None


def find_zookeeper(assume_yes: bool = False) -> tuple[str, Callable[[], None]]:
    """Return (connection string, what to call when done)."""
    if hosts := existing_zookeeper():
        return hosts, lambda: None
    if _docker_engine_answers() and (hosts := _compose_up()):
        return hosts, lambda: None
    cluster = _private_cluster(assume_yes).start()
    _say(f"started a private ZooKeeper ({cluster.servers[0].mode()}) on {cluster.hosts}; it stops when you do")
    _say("to share one ZooKeeper between terminals, start it once with `./run.sh zk start`")
    return cluster.hosts, cluster.stop


def _private_cluster(assume_yes: bool) -> ZooKeeperCluster:
    """The launcher's server; when Java or ZooKeeper is missing, offer to install them first."""
    return install.ensure(lambda: ZooKeeperCluster(servers=1), assume_yes, "the runner")


# ---------------------------------------------------------------- running

def smoke(hosts: str) -> int:
    """Connect, create and read an ephemeral znode, and print what the server says of itself."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException

    client = KazooClient(hosts=hosts, connection_retry=RECONNECT_RETRY)
    try:
        client.start(timeout=10)
        path = client.create(f"/smoke-{uuid.uuid4().hex[:8]}", b"hello", ephemeral=True)
        data, stat = client.get(path)
        srvr = dict(line.split(": ", 1) for line in client.command(b"srvr").splitlines() if ": " in line)
        print(f"ok: wrote and read {path} = {data!r} (ephemeral owner 0x{stat.ephemeralOwner:x})")
        print(f"server: {srvr.get('Zookeeper version', '?').split(',')[0]}, mode {srvr.get('Mode', '?')}")
    except (KazooException, OSError) as exc:
        print(f"run: smoke test against {hosts} failed: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        client.stop()
        client.close()
    return 0


def run_challenge(script: str, hosts: str, args: list[str]) -> int:
    """Run the challenge as a child; Ctrl-C reaches it too, and we wait while it cleans up.

    A terminal's Ctrl-C goes to the whole process group, the child included. A SIGTERM may come to us
    alone (`kill PID`, a supervisor), so we pass it on: else the challenge would go on running, with
    its sessions open, after we are gone.
    """
    proc = subprocess.Popen([sys.executable, str(ROOT / script), "--zk", hosts, *args], cwd=ROOT)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def dispatch(name: str, argv: list[str]) -> int:
    """Hand a command that needs no ZooKeeper from us to its module's main()."""
    module_name = MODULES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"run: `./run.sh {name}` is not available in this checkout ({module_name} is missing)",
                  file=sys.stderr)
            return 1
        raise
    return module.main(argv)


def main(argv: list[str] | None = None) -> int:
    if _GUARDED:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the imports are done: Ctrl-C cleans up
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv.pop(0) if argv and not argv[0].startswith("-") else "leader"
    if name in MODULES:
        return dispatch(name, argv)
    if name not in (*CHALLENGES, "smoke"):
        print(USAGE, file=sys.stderr)
        return 0 if name == "help" else 2
    assume_yes, argv = install.wanted(argv)
    try:
        hosts, done = find_zookeeper(assume_yes)
    except (ZooKeeperMissing, zk.ZkError, RuntimeError, TimeoutError) as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # while a private server started: atexit and PDEATHSIG stop it
        return 130
    try:
        return smoke(hosts) if name == "smoke" else run_challenge(CHALLENGES[name], hosts, argv)
    except KeyboardInterrupt:
        return 0
    finally:
        done()


if __name__ == "__main__":
    sys.exit(main())
