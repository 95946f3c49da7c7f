"""A ZooKeeper every terminal shares, and faults by hand: `./run.sh zk ...`.

    ./run.sh zk start [--servers 1|3]   real servers on 2181 (or 2181-2183), in the background
    ./run.sh zk status                  each server's port, mode (standalone/leader/follower) and pid
    ./run.sh zk stop                    stop exactly the servers `zk start` started
    ./run.sh zk kill N | pause N | resume N | restart N
                                        kill -9, SIGSTOP, SIGCONT, start again (same port, same data)

The servers are the launcher's (zklab.launcher), started detached: they outlive this command and the
terminal it ran in. What was started is recorded in `.zklab/state.json`, and every `./run.sh leader`
or `./run.sh hashing` connects to those servers first, so copies in several terminals meet in one
election or one ring. Tests move everything aside: ZKLAB_PORT sets the first client port and
ZKLAB_STATE the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from zklab import install, interrupts
from zklab.launcher import ZooKeeperCluster, ZooKeeperMissing, process_stat, server_mode, servers_arg, spawn
from zklab.plumbing import number_arg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 2181           # the compose file's ports: 2181, or 2181-2183 for the ensemble
START_TIMEOUT = 30.0          # a JVM starts in 1-3 s; a loaded 2-core machine takes longer
STOP_TIMEOUT = 10.0           # a clean shutdown takes well under a second; then kill -9
SRVR_TIMEOUT = 0.5            # srvr is answered at once by a serving server
MAX_PID = 2**22               # Linux's largest pid_max: a bigger "pid" in the state file is damage
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


class ZkError(RuntimeError):
    """Something the learner must fix; the message is one line that says how."""


# ---------------------------------------------------------------- where things are

def state_dir() -> Path:
    # Absolute: the JVMs' command lines name their config by this path, and that is how we know them.
    return Path(os.environ.get("ZKLAB_STATE") or ROOT / ".zklab").absolute()


def base_port() -> int:
    """The first client port: ZKLAB_PORT, else 2181 (the ensemble takes the next two as well)."""
    raw = os.environ.get("ZKLAB_PORT", "")
    if not raw:
        return DEFAULT_PORT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 65533:
        raise ZkError(f"ZKLAB_PORT must be a port from 1 to 65533, not {raw!r}")
    return int(raw)


def _state_file() -> Path:
    return state_dir() / "state.json"


def load_state() -> dict | None:
    """What `zk start` recorded, or None. A damaged or lost file counts as nothing recorded, unless our
    own servers still run: they are found by their config path (see adopt())."""
    try:
        state = json.loads(_state_file().read_text())
    except (OSError, ValueError):
        state = None
    servers = state.get("servers") if isinstance(state, dict) else None
    if isinstance(servers, list) and servers and all(map(_well_formed, servers)):
        return state
    return adopt()


def _well_formed(server: object) -> bool:
    """A record we can act on: anything else in the file is ignored, never signalled."""
    return (isinstance(server, dict) and all(isinstance(server.get(k), int) for k in ("sid", "port", "pid"))
            and all(isinstance(server.get(k), str) for k in ("config", "log"))
            and isinstance(server.get("cmd"), list) and all(isinstance(arg, str) for arg in server["cmd"])
            and 1 <= server["port"] <= 65535 and 1 <= server["pid"] < MAX_PID and 1 <= server["sid"] <= 255)


def _save_state(state: dict) -> None:
    tmp = _state_file().with_suffix(".tmp")
    recorded = {key: value for key, value in state.items() if key != "adopted"}  # recorded again: not lost now
    tmp.write_text(json.dumps(recorded, indent=2) + "\n")
    tmp.replace(_state_file())  # readers see the old file or the new one, never half of one


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One `zk` command at a time changes the state (two terminals may type at once)."""
    try:
        state_dir().mkdir(parents=True, exist_ok=True)
        lock = open(state_dir() / "lock", "w")  # noqa: SIM115 (held open for the whole command)
    except OSError as exc:
        raise ZkError(f"cannot use {state_dir()} for the lab's state ({exc.strerror}): it must be a folder "
                      "holding a file named lock; move what is in the way aside") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------- servers whose record was lost

def adopt() -> dict | None:
    """Our running servers, found by the config path in their command line (state_dir()/data/zkN/zoo.cfg),
    when state.json is gone (`rm`, `git clean -xfd`) or damaged: so no JVM is left that `zk` cannot stop."""
    data = state_dir() / "data"
    servers = []
    for pid, argv in _java_processes():
        config = next((arg for arg in argv if arg.startswith(f"{data}/zk") and arg.endswith("/zoo.cfg")), None)
        if config is None or MAIN_CLASS not in argv:
            continue
        sid, port = Path(config).parent.name[2:], _config_port(Path(config))
        if sid.isdigit() and port and 1 <= pid < MAX_PID:
            servers.append({"sid": int(sid), "port": port, "pid": pid, "config": config,
                            "log": str(Path(config).parent / "server.log"), "cmd": argv})
    return {"servers": sorted(servers, key=lambda s: s["sid"]), "adopted": True} if servers else None


def _java_processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of every process whose argv mentions the main class of a ZooKeeper server."""
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            try:
                raw = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
            except OSError:
                continue
            if MAIN_CLASS.encode() in raw:
                yield int(entry.name), raw.decode(errors="replace").rstrip("\0").split("\0")
        return
    listing = subprocess.run(["ps", "-ax", "-o", "pid=,command="], capture_output=True, text=True, timeout=5)
    for line in listing.stdout.splitlines():  # macOS: no /proc, and argv comes joined by spaces
        pid, _, command = line.strip().partition(" ")
        if MAIN_CLASS in command and pid.isdigit():
            yield int(pid), command.split()


def _config_port(config: Path) -> int | None:
    try:
        lines = config.read_text().splitlines()
    except OSError:
        return None
    port = next((line.partition("=")[2].strip() for line in lines if line.startswith("clientPort=")), "")
    return int(port) if port.isdigit() and 1 <= int(port) <= 65535 else None


# ---------------------------------------------------------------- is that pid still our server?

def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return ""  # Linux, and the process is gone
    except OSError:
        return ""
    result = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, timeout=5)
    return result.stdout  # macOS has no /proc


def _reap(pid: int) -> None:
    """If the JVM is our own child (tests run `zk` in-process), collect its exit so it is not a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_state(server: dict) -> str:
    """'running', 'paused' or 'gone'. A pid now used by another program counts as gone."""
    pid = server["pid"]
    if pid <= 0:
        return "gone"
    _reap(pid)
    if server["config"] not in _cmdline(pid):
        return "gone"
    if Path("/proc/self").exists():
        code = (process_stat(pid) or ("",))[0]
    else:
        code = subprocess.run(["ps", "-p", str(pid), "-o", "stat="], capture_output=True, text=True,
                              timeout=5).stdout.strip()[:1]
    return {"T": "paused", "Z": "gone", "X": "gone", "": "gone"}.get(code, "running")


def hosts_of(state: dict) -> str:
    return ",".join(f"127.0.0.1:{s['port']}" for s in state["servers"])


def shared_hosts() -> str | None:
    """The connection string of the servers `zk start` recorded, if they serve; None if none is recorded.

    Recorded but not serving (paused, down, or too few for a majority) raises ZkError with the fix: the
    user chose these servers, so no tool may quietly use another ZooKeeper in their place."""
    state = load_state()
    if state is None:
        return None
    # A majority must serve: a server that just lost its peers still answers `srvr` as leader or follower
    # until it notices (up to syncLimit ticks), yet no session can be opened on it.
    serving = sum(process_state(s) == "running" and bool(server_mode(s["port"], SRVR_TIMEOUT))
                  for s in state["servers"])
    if serving > len(state["servers"]) // 2:
        return hosts_of(state)
    raise ZkError(not_serving(state))


def not_serving(state: dict) -> str:
    """One line: which recorded servers are paused or down, and the commands that bring them back."""
    what = {s["sid"]: process_state(s) for s in state["servers"]}
    fixes = [f"`./run.sh zk resume {sid}`" for sid, w in what.items() if w == "paused"]
    fixes += [f"`./run.sh zk restart {sid}`" for sid, w in what.items() if w == "gone"]
    found = ", ".join(f"server {sid} {'down' if w == 'gone' else w}" for sid, w in what.items())
    if len(what) > 1:
        found += f" (a majority of {len(what) // 2 + 1} must serve)"
    fix = " and ".join(fixes) if fixes else "wait for it, or see `./run.sh zk status`"
    return (f"the lab's ZooKeeper (ZK_HOSTS={hosts_of(state)}) is recorded but not serving: {found}; "
            f"fix it with {fix}, or forget it with `./run.sh zk stop`")


# ---------------------------------------------------------------- start and stop

def _port_problem(port: int) -> str | None:
    if server_mode(port, SRVR_TIMEOUT):
        return (f"a ZooKeeper already answers on 127.0.0.1:{port}, not one that `./run.sh zk start` started; "
                "use it as it is, stop it, or pick other ports with ZKLAB_PORT=3181")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return f"port {port} is taken by another program; free it, or pick other ports with ZKLAB_PORT=3181"
    return None


def start(servers: int) -> dict:
    """Start `servers` detached servers on the fixed ports, record them, and wait until all serve."""
    state = load_state()
    if state and any(process_state(s) != "gone" for s in state["servers"]):
        raise ZkError(f"the lab's ZooKeeper is already running ({len(state['servers'])} server(s), "
                      f"ZK_HOSTS={hosts_of(state)}); `./run.sh zk stop` first to start another")
    ports = [base_port() + i for i in range(servers)]
    for port in ports:
        if problem := _port_problem(port):
            raise ZkError(problem)
    data = state_dir() / "data"
    shutil.rmtree(data, ignore_errors=True)  # a fresh start is a fresh tree; `restart N` keeps the data
    cluster = ZooKeeperCluster(servers, workdir=str(data), client_ports=ports)
    state = {"servers": [{"sid": s.sid, "port": s.client_port, "config": str(s.data_dir / "zoo.cfg"),
                          "log": str(s.data_dir / "server.log"), "cmd": cluster.command(s)}
                         for s in cluster.servers]}
    procs = {server["sid"]: _spawn(server) for server in state["servers"]}
    _save_state(state)  # recorded before the wait, so `zk stop` finds them even if we are interrupted
    try:
        _wait_serving(state["servers"], procs, START_TIMEOUT)
    except BaseException:  # a server that failed, or Ctrl-C while waiting: leave nothing half-started
        stop()
        raise
    return state


def _spawn(server: dict) -> subprocess.Popen:
    proc = spawn(server["cmd"], Path(server["log"]), detached=True)
    server["pid"] = proc.pid
    return proc


def _wait_serving(servers: list[dict], procs: dict[int, subprocess.Popen], timeout: float) -> None:
    """Wait until every server serves. Exits are seen through our own child handles: until the JVM
    has been exec'd, its /proc entry still shows this Python, so process_state() would say 'gone'."""
    deadline = time.monotonic() + timeout
    while True:
        interrupts.raise_noted()  # a Ctrl-C or SIGTERM that Python swallowed while we forked a server
        for server in servers:
            if procs[server["sid"]].poll() is not None:
                raise ZkError(f"ZooKeeper server {server['sid']} exited at start: {_log_tail(server)}")
        if all(server_mode(s["port"], SRVR_TIMEOUT) for s in servers):
            return
        if time.monotonic() > deadline:
            waiting = [str(s["sid"]) for s in servers if not server_mode(s["port"], SRVR_TIMEOUT)]
            raise ZkError(f"server(s) {', '.join(waiting)} did not serve within {timeout:.0f}s "
                          "(an ensemble member serves only while a majority is up); see `./run.sh zk status`")
        time.sleep(0.1)


def _log_tail(server: dict, lines: int = 3) -> str:
    try:
        text = Path(server["log"]).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def _terminate(server: dict) -> None:
    """SIGTERM (SIGCONT first, a paused JVM cannot exit), then kill -9 if it does not go in time."""
    if process_state(server) == "gone":
        return
    with contextlib.suppress(ProcessLookupError):  # it may exit between our look and our signal
        os.kill(server["pid"], signal.SIGCONT)
        os.kill(server["pid"], signal.SIGTERM)
        if not _wait_gone(server, STOP_TIMEOUT):
            os.kill(server["pid"], signal.SIGKILL)
            _wait_gone(server, STOP_TIMEOUT)


def _wait_gone(server: dict, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_state(server) != "gone":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def stop() -> list[dict]:
    """Stop every recorded server that is still ours, and forget them. Returns what was recorded."""
    state = load_state()
    if state is None:
        return []
    for server in state["servers"]:
        _terminate(server)
    _state_file().unlink(missing_ok=True)
    shutil.rmtree(state_dir() / "data", ignore_errors=True)
    return state["servers"]


# ---------------------------------------------------------------- one member at a time

def _member(sid: int) -> tuple[dict, dict]:
    state = load_state()
    if state is None:
        raise ZkError("the lab's ZooKeeper is not running; start it with `./run.sh zk start --servers 3`")
    for server in state["servers"]:
        if server.get("sid") == sid:
            return state, server
    sids = [server["sid"] for server in state["servers"]]
    which = f"only server {sids[0]}" if len(sids) == 1 else f"servers {min(sids)}-{max(sids)}"
    raise ZkError(f"no server {sid}: the lab's ZooKeeper has {which}")


def signal_member(sid: int, sig: signal.Signals) -> dict:
    """kill -9, SIGSTOP or SIGCONT one recorded server, after checking the pid is still our JVM."""
    _, server = _member(sid)
    if process_state(server) == "gone":
        raise ZkError(f"server {sid} is not running; `./run.sh zk restart {sid}` starts it again")
    os.kill(server["pid"], sig)
    if sig == signal.SIGKILL:
        _wait_gone(server, STOP_TIMEOUT)
    return server


def restart_member(sid: int) -> dict:
    """Stop one server if it runs, start it again on the same port and data, and wait until it serves:
    unless too few of the ensemble run to make a majority, when it cannot serve and waiting is in vain."""
    state, server = _member(sid)
    _terminate(server)
    proc = _spawn(server)
    _save_state(state)
    if has_majority(state):
        _wait_serving([server], {sid: proc}, START_TIMEOUT)
    return server


def has_majority(state: dict) -> bool:
    """More than half of the servers run (paused ones do not count: they answer nobody)."""
    running = sum(process_state(server) == "running" for server in state["servers"])
    return running > len(state["servers"]) // 2


# ---------------------------------------------------------------- status

def status_lines() -> list[str]:
    state = load_state()
    if state is None:
        return ["the lab's ZooKeeper is not running; start it with `./run.sh zk start` (or --servers 3)"]
    lines = [f"{'server':<8}{'port':<8}{'pid':<10}mode"]
    for server in state["servers"]:
        lines.append(f"{server['sid']:<8}{server['port']:<8}{_describe(server)}")
    lines.append(f"ZK_HOSTS={hosts_of(state)}   (every ./run.sh leader|hashing|tree uses these)")
    if len(state["servers"]) > 1 and not has_majority(state):
        lines.append(f"no majority runs ({len(state['servers']) // 2 + 1} of {len(state['servers'])} must): no "
                     "server serves clients; one that lost its peers says leader or follower until it notices")
    if state.get("adopted"):
        lines.append(f"(found by their command lines: {_state_file()} was lost; `./run.sh zk stop` stops them)")
    return lines


def _describe(server: dict) -> str:
    sid, what = server["sid"], process_state(server)
    if what == "gone":
        return f"{'-':<10}down: `./run.sh zk restart {sid}` starts it again"
    if what == "paused":
        return f"{server['pid']:<10}paused (SIGSTOP): `./run.sh zk resume {sid}` wakes it"
    return f"{server['pid']:<10}{server_mode(server['port'], SRVR_TIMEOUT) or 'not serving (no quorum, or starting)'}"


# ---------------------------------------------------------------- command line

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="./run.sh zk", description="A ZooKeeper every terminal shares, "
                                     "and faults by hand on its members.")
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", allow_abbrev=False,
                                help="start servers in the background on 2181 (or 2181-2183)")
    begin.add_argument("--servers", type=servers_arg, choices=[1, 3], default=1, help="1 = standalone, 3 = ensemble")
    begin.add_argument("--yes", action="store_true", help="install ZooKeeper without asking if it is missing")
    commands.add_parser("status", allow_abbrev=False, help="each server's port, pid and mode")
    commands.add_parser("stop", allow_abbrev=False, help="stop the servers `zk start` started")
    for name, what in [("kill", "kill -9 server N: a crash, no goodbye"), ("pause", "SIGSTOP server N: a frozen "
                       "machine, its port still open"), ("resume", "SIGCONT server N"),
                       ("restart", "start server N again, same port and data")]:
        commands.add_parser(name, allow_abbrev=False, help=what).add_argument(
            "sid", type=number_arg(int, 1, 255), metavar="N", help="server number")
    return parser


SIGNALS = {"kill": signal.SIGKILL, "pause": signal.SIGSTOP, "resume": signal.SIGCONT}
DONE = {"kill": "killed (kill -9)", "pause": "paused (SIGSTOP)", "resume": "resumed (SIGCONT)"}


def _start_installing(servers: int, assume_yes: bool) -> None:
    """start(), offering to install ZooKeeper first when this machine has none (as ./run.sh leader does)."""
    try:
        install.ensure(lambda: start(servers), assume_yes or install.wanted([])[0], "`zk start`")
    except ZooKeeperMissing as missing:
        raise ZkError(str(missing)) from None


def _run(args: argparse.Namespace) -> None:
    if args.command == "status":
        print("\n".join(status_lines()))
        return
    with _locked():
        if args.command == "start":
            _start_installing(args.servers, args.yes)
            print("\n".join(status_lines()))
            print("started in the background; it keeps running after this terminal closes. "
                  "`./run.sh zk stop` stops it.")
        elif args.command == "stop":
            stopped = stop()
            print(f"stopped {len(stopped)} server(s)" if stopped else "nothing to stop: the lab's ZooKeeper "
                  "is not running")
        elif args.command == "restart":
            server = restart_member(args.sid)
            mode = server_mode(server["port"], SRVR_TIMEOUT) or ("not serving yet: too few servers run to make a "
                                                                 "majority; restart another one")
            print(f"server {args.sid} restarted on 127.0.0.1:{server['port']} (pid {server['pid']}), {mode}")
        else:
            server = signal_member(args.sid, SIGNALS[args.command])
            print(f"server {args.sid} (127.0.0.1:{server['port']}, pid {server['pid']}) {DONE[args.command]}")


def output_lost(exc: BaseException, who: str) -> int | None:
    """If `exc` is stdout refusing our output (a full disk, `> /dev/full`, a reader that left), say so in
    one line on stderr, point stdout at /dev/null (Python's last flush must not fail again) and return 1."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.EPIPE, errno.ENOSPC, errno.EIO):
        return None
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if exc.errno != errno.EPIPE:  # a reader that left (`| head`) wanted no more: not worth a line
        with contextlib.suppress(OSError, ValueError):
            print(f"{who}: cannot write to stdout ({exc.strerror}); nothing more is printed", file=sys.stderr)
    return 1 if exc.errno != errno.EPIPE else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args)
        sys.stdout.flush()
    except (ZkError, ZooKeeperMissing) as exc:
        print(f"zk: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if (code := output_lost(exc, "zk")) is None:
            raise
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
