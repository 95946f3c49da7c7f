"""One command for the lab: find (or start, or install) a ZooKeeper, then run a challenge against it.

    ./run.sh                            # every command, one line each (as do help, --help, -h)
    ./run.sh leader [--yes] [options]   # the rich election demo on challenge_leader_election.py
    ./run.sh hashing [--yes] [options]  # the rich ring demo on challenge_consistent_hashing.py
    ./run.sh smoke [--yes] [--zk HOSTS] # connect, write and read an ephemeral znode, print the server
    ./run.sh zk start|status|stop|kill N|pause N|resume N|restart N   # a ZooKeeper every terminal shares
    ./run.sh tree [PATH]                # the znodes, live
    ./run.sh check | exercise | soak    # the checker, the exercises, the chaos soak (they start their own)

The lab's one rule for its tools: a command does what it says, or prints one line (what happened, what
to do) and exits 1 (the environment: no ZooKeeper, a refusal) or 2 (usage: a bad argument). A
traceback appears only with `./run.sh -v COMMAND`. No tool quietly replaces the ZooKeeper the user chose.

Where the ZooKeeper comes from, first that works: --zk; ZK_HOSTS; the lab's shared servers (`./run.sh zk
start`: if they are recorded but not serving, we stop there and say how to fix them); a server already
answering on 127.0.0.1:2181 (ZKLAB_PORT moves that port); `docker compose up -d` where a Docker engine
answers; else the local launcher, which is stopped again when the challenge ends. When even that finds
no ZooKeeper, it offers to install one (`--yes`: without asking). Arguments are checked before any of it.
"""

from __future__ import annotations

import _signal  # `signal` without its enums: the guard below starts sooner

# ruff: noqa: E402  (the guard below must run before the imports, which take a moment)
import os

# Ctrl-C while Python is still loading the lab: nothing started yet, so leave at once and quietly.
# _interruptible() puts Python's KeyboardInterrupt back once a command's imports are done. (An
# ignored SIGINT, as in a background job, stays ignored.)
_GUARDED = __name__ == "__main__" and _signal.getsignal(_signal.SIGINT) != _signal.SIG_IGN
if _GUARDED:
    _signal.signal(_signal.SIGINT, lambda *_: os._exit(130))

import argparse
import importlib
import logging
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from zklab import install, interrupts, zk
from zklab.launcher import ZooKeeperCluster, ZooKeeperMissing, server_mode
from zklab.plumbing import RECONNECT, ZK_FORM, chroot_hint, parse_zk, zk_arg

ROOT = Path(__file__).resolve().parent.parent
CHALLENGES = {"leader": "challenge_leader_election.py", "hashing": "challenge_consistent_hashing.py"}
# The rich demos drive the learner's script through its public API; until one exists, the script runs.
DEMOS = {"leader": "zklab.demo_leader", "hashing": "zklab.demo_hashing"}
# Commands that need no ZooKeeper from us: each starts its own, or is about ZooKeeper itself.
MODULES = {"check": "zklab.check", "exercise": "zklab.exercise", "soak": "bench.soak", "zk": "zklab.zk",
           "tree": "zklab.tree"}
COMMANDS = {
    "leader": "an election among workers under chaos, on your challenge_leader_election.py",
    "hashing": "members joining and leaving a hash ring, on your challenge_consistent_hashing.py",
    "smoke": "connect, write and read one ephemeral znode, and say which server answered",
    "zk": "a ZooKeeper every terminal shares: start|status|stop|kill N|pause N|resume N|restart N",
    "tree": "the znodes under a path (default /lab), redrawn on every change",
    "check": "check your challenge code against its guarantees (starts its own ZooKeeper)",
    "exercise": "the write-it-yourself steps and the break-it exercises: list, apply, reset",
    "soak": "both demos under chaos for a long while, their invariants checked",
    "help": "this list",
}
HELP = "\n".join(["usage: ./run.sh [-v] COMMAND [options]   (./run.sh COMMAND --help for its options)", "",
                  *(f"  {name:<10}{what}" for name, what in COMMANDS.items()), "",
                  "-v shows a traceback when something fails; without it, failures are one line."])
DEFAULT_PORT = 2181  # the compose file's port, and where a server the learner started usually is
RECONNECT_RETRY = RECONNECT  # the lab's one reconnect policy (zklab.plumbing), under its old name here
CONNECT_TIMEOUT = 5.0        # smoke: a ZooKeeper that has not answered by then is not there
CLOSE_TIMEOUT = 3.0          # closing a session never waits longer than this on a ZooKeeper that is gone
PLACEHOLDER_ZK = "127.0.0.1:2181"  # what the demos' parse_args gets for --zk while we only validate


def _print_or_fail(self: argparse.ArgumentParser, message: str, file: object = None) -> None:
    """argparse's _print_message without its silence: a --help that stdout refuses (a full disk) fails in one
    line like any other output of ours (`output_lost`), where argparse printed nothing and exited 0."""
    if message:
        (file or sys.stderr).write(message)


# Every command's parser runs in this process (`dispatch`, `validate`): one place holds them all to the rule.
argparse.ArgumentParser._print_message = _print_or_fail


class UsageError(Exception):
    """A bad argument or setting from the user: one line, exit 2."""


def _say(message: str) -> None:
    print(f"[run] {message}", flush=True)


def _default_port() -> int:
    return zk.base_port() if os.environ.get("ZKLAB_PORT") else DEFAULT_PORT


def _interruptible() -> None:
    """The imports are done: from now on Ctrl-C raises KeyboardInterrupt, so what we start is cleaned up."""
    if _GUARDED:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


def env_zk_hosts() -> str | None:
    """ZK_HOSTS, checked by the lab's one --zk grammar; garbage there is a UsageError, not a traceback later."""
    raw = os.environ.get("ZK_HOSTS", "")
    if not raw.strip():
        return None
    try:
        return zk_arg(raw)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"ZK_HOSTS={raw!r} {exc}; fix it, or unset ZK_HOSTS") from None


def existing_zookeeper() -> str | None:
    """Steps 1 and 2 of the search, which start nothing: ZK_HOSTS, the shared servers, the default port.

    Raises zk.ZkError when the shared servers are recorded but not serving, UsageError for a bad ZK_HOSTS."""
    if hosts := env_zk_hosts():
        _say(f"using ZK_HOSTS={hosts}")
        return hosts
    if hosts := zk.shared_hosts():
        _say(f"using the lab's shared ZooKeeper at {hosts} (`./run.sh zk status` shows it)")
        return hosts
    port = _default_port()
    if server_mode(port):
        _say(f"using the ZooKeeper already answering on 127.0.0.1:{port}")
        return f"127.0.0.1:{port}"
    return None


def searched() -> str:
    """Where existing_zookeeper() looked, for a 'none found' line that names the right port."""
    return f"ZK_HOSTS, the lab's shared servers (./run.sh zk start), 127.0.0.1:{_default_port()}"


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


# ---------------------------------------------------------------- smoke

def _quiet_kazoo() -> None:
    # Kazoo logs every failed connection attempt (22 lines for a closed port): we say it in one line.
    logging.getLogger("kazoo").addHandler(logging.NullHandler())
    logging.getLogger("kazoo").propagate = False


def smoke(hosts: str) -> int:
    """Connect, create and read an ephemeral znode, and print what the server says of itself."""
    from kazoo.exceptions import KazooException, NoAuthError, NoNodeError

    from zklab.plumbing import new_client, start_client, stop_client

    _quiet_kazoo()
    client = new_client(hosts)
    chroot = parse_zk(hosts)[1]
    try:
        if not start_client(client, CONNECT_TIMEOUT):
            return _fail(f"smoke: no ZooKeeper answered at {hosts} within {CONNECT_TIMEOUT:.0f}s (nothing there, "
                         "or not a ZooKeeper); start one with `./run.sh zk start`, or fix --zk / ZK_HOSTS")
        path = client.create(f"/smoke-{uuid.uuid4().hex[:8]}", b"hello", ephemeral=True)
        data, stat = client.get(path)
        srvr = dict(line.split(": ", 1) for line in client.command(b"srvr").splitlines() if ": " in line)
        said = (f"ok: wrote and read {chroot}{path} = {data!r} (ephemeral owner 0x{stat.ephemeralOwner:x})\n"
                f"server: {srvr.get('Zookeeper version', '?').split(',')[0]}, mode {srvr.get('Mode', '?')}")
    except NoNodeError:
        return _fail(f"smoke: the chroot {chroot} does not exist on {hosts}; create it with: {chroot_hint(hosts)}")
    except NoAuthError:
        return _fail(f"smoke: ZooKeeper refused to create a znode under {chroot or '/'} (its ACL does not "
                     "grant us CREATE); use a path whose ACL allows it")
    except (KazooException, OSError) as exc:
        return _fail(f"smoke: the test against {hosts} failed: {str(exc) or type(exc).__name__}")
    finally:
        stop_client(client, CLOSE_TIMEOUT)
    print(said)  # out of the try: a reader that left (`| head -1`) is no failed test, and main says what it is
    return 0


def _fail(line: str) -> int:
    print(line, file=sys.stderr)
    return 1


def _smoke_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./run.sh smoke", description="Connect, write and read one ephemeral "
                                     "znode, and say which server answered.", allow_abbrev=False)
    parser.add_argument("--zk", type=zk_arg, help=f"{ZK_FORM} (default: where ./run.sh finds one)")
    parser.add_argument("--yes", action="store_true", help="install ZooKeeper without asking if none is found")
    return parser


# ---------------------------------------------------------------- the challenges

def _demo_module(name: str) -> ModuleType | None:
    """The rich demo for a challenge, or None while this checkout has none (then the script itself runs)."""
    try:
        return importlib.import_module(DEMOS[name])
    except ModuleNotFoundError as exc:
        if exc.name == DEMOS[name]:
            return None
        raise


def challenge_command(name: str, hosts: str | None, args: list[str]) -> list[str]:
    """The child's command line: the rich demo if there is one, else the script; --zk first, so a user's wins."""
    zk_args = ["--zk", hosts] if hosts else []
    if _demo_module(name) is not None:
        return [sys.executable, "-m", DEMOS[name], *zk_args, *args]
    return [sys.executable, str(ROOT / CHALLENGES[name]), *zk_args, *args]


def validate(name: str, args: list[str]) -> str | None:
    """Check the challenge's arguments with the demo's own parser before any ZooKeeper starts.

    Returns the user's own --zk if they gave one (then we look for no other). Bad arguments: the
    parser's SystemExit(2); --help: its options and SystemExit(0). Without a demo module, the script
    checks its arguments itself, after the search (as before the demos existed)."""
    demo = _demo_module(name)
    if demo is None:
        if {"-h", "--help"} & set(args):
            raise SystemExit(subprocess.run(challenge_command(name, None, args), cwd=ROOT).returncode)
        return _user_zk(args)
    demo.parse_args(["--zk", PLACEHOLDER_ZK, *args])
    return _user_zk(args)


def _user_zk(args: list[str]) -> str | None:
    """The --zk the user gave the challenge, checked by the lab's grammar; None if they gave none."""
    given = [a[5:] for a in args if a.startswith("--zk=")] + [b for a, b in zip(args, args[1:], strict=False)
                                                              if a == "--zk"]
    try:
        return zk_arg(given[-1]) if given else None
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--zk {exc}") from None


def run_challenge(command: list[str]) -> int:
    """Run the challenge as a child; Ctrl-C reaches it too, and we wait while it cleans up.

    A terminal's Ctrl-C goes to the whole process group, the child included. A SIGTERM may come to us
    alone (`kill PID`, a supervisor), so we pass it on: else the challenge would go on running, with
    its sessions open, after we are gone.
    """
    proc = subprocess.Popen(command, cwd=ROOT)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


def _nothing() -> None:
    pass


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
    _interruptible()
    # SIGTERM as Ctrl-C: finally blocks and atexit run, so servers and /tmp/zklab-* folders go too. A module
    # that handles SIGTERM its own way (check) installs its own handlers over these.
    restore = interrupts.install(sigterm=KeyboardInterrupt)
    try:
        return module.main(argv)
    finally:
        restore()


def start_challenge(name: str, argv: list[str]) -> int:
    """leader, hashing, smoke: check the arguments, find a ZooKeeper (maybe start one), run, clean up."""
    assume_yes, argv = install.wanted(argv)
    hosts = _smoke_parser().parse_args(argv).zk if name == "smoke" else validate(name, argv)
    _interruptible()
    done: Callable[[], None] = _nothing
    if hosts is None:
        hosts, done = find_zookeeper(assume_yes)
        argv = argv if name == "smoke" else ["--zk", hosts, *argv]
    try:
        return smoke(hosts) if name == "smoke" else run_challenge(challenge_command(name, None, argv))
    except KeyboardInterrupt:  # only smoke can be interrupted here: run_challenge waits for its child
        return 130
    finally:
        done()


def _route(argv: list[str]) -> int:
    if not argv or argv[0] in ("help", "--help", "-h"):
        print(HELP, flush=True)
        return 0
    name = argv.pop(0) if not argv[0].startswith("-") else "leader"
    if name in MODULES:
        return dispatch(name, argv)
    if name not in COMMANDS:
        raise UsageError(f"no command {name!r}; the commands are {', '.join(COMMANDS)} (./run.sh help says "
                         "what each does)")
    try:
        return start_challenge(name, argv)
    except (ZooKeeperMissing, zk.ZkError, RuntimeError, TimeoutError) as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 1


def _exit_code(route: Callable[[list[str]], int], argv: list[str]) -> int:
    """route(argv)'s exit code, a SystemExit (argparse's --help and errors) included."""
    try:
        return route(argv)
    except SystemExit as leaving:
        if leaving.code is None or isinstance(leaving.code, int):
            return leaving.code or 0
        print(leaving.code, file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool(argv) and argv[0] in ("-v", "--verbose")
    try:
        code = _exit_code(_route, argv[1:] if verbose else argv)
        sys.stdout.flush()  # a full disk must show here, as one line, not in Python's last flush at exit
        return code
    except UsageError as exc:
        print(f"run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # while a private server started: atexit and PDEATHSIG stop it
        return 130
    except OSError as exc:
        if (code := zk.output_lost(exc, "run")) is not None:
            return code
        if verbose:
            raise
        return _fail(f"run: {exc.strerror or exc} ({type(exc).__name__}); `./run.sh -v ...` shows where")
    except Exception as exc:  # the lab's rule: one line, unless -v asks for the traceback
        if verbose:
            raise
        return _fail(f"run: unexpected {type(exc).__name__}: {exc}; `./run.sh -v ...` shows the traceback")


if __name__ == "__main__":
    sys.exit(main())
