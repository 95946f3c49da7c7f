"""Offer to install ZooKeeper when none is found, so `./run.sh` is one command on a fresh machine.

What it does, decided by `plan()` from a probe of the machine (tests pass their own probe):
- Debian/Ubuntu (apt-get) as root: print `apt-get install -y zookeeper` (plus a headless JRE when
  there is no Java) and run it; if apt-get fails (a fresh machine has no package lists yet), run
  `apt-get update` and try once more.
- Debian/Ubuntu as a user with sudo, at a terminal: ask [Y/n], then the same commands through sudo.
- macOS with Homebrew, at a terminal: ask [Y/n], then `brew install zookeeper`.
- `--yes` or ZKLAB_INSTALL=1: as above without asking (unattended).
- Anything else: nothing is installed, and the caller prints the usual one-line error.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from zklab.launcher import ZooKeeperMissing, find_java

T = TypeVar("T")
APT_PACKAGES = ["zookeeper"]            # Debian's server package; it pulls in Java and the jars
JRE_PACKAGE = "default-jre-headless"    # named too when Java is missing, so the JRE is headless-first


@dataclass(frozen=True)
class Machine:
    """What decides the offer: which system, who we are, whether someone can answer a question."""

    system: str                          # platform.system(): "Linux", "Darwin", ...
    is_root: bool
    interactive: bool                    # stdin and stdout are a terminal: a person can answer [Y/n]
    has_java: bool
    which: Callable[[str], str | None] = field(default=shutil.which, compare=False)

    @classmethod
    def probe(cls) -> Machine:
        return cls(system=platform.system(), is_root=hasattr(os, "geteuid") and os.geteuid() == 0,
                   interactive=sys.stdin.isatty() and sys.stdout.isatty(), has_java=_has_java())


def _has_java() -> bool:
    try:
        find_java()
    except ZooKeeperMissing:
        return False
    return True


@dataclass(frozen=True)
class Plan:
    """The install command, the command that refreshes package lists (apt), and whether to ask first."""

    install: list[str]
    refresh: list[str] | None
    ask: bool


def plan(machine: Machine, assume_yes: bool) -> Plan | None:
    """What to run on this machine, or None when the lab cannot (or may not) install ZooKeeper here."""
    if not assume_yes and not machine.interactive:
        return None  # nobody to ask, and nobody said --yes: a script may not expect an install
    if machine.system == "Linux" and machine.which("apt-get"):
        packages = APT_PACKAGES + ([] if machine.has_java else [JRE_PACKAGE])
        if machine.is_root:
            sudo: list[str] = []
        elif machine.which("sudo"):
            sudo = ["sudo"]
        else:
            return None
        # Root runs it after printing it; a sudo user is asked first.
        return Plan([*sudo, "apt-get", "install", "-y", *packages], [*sudo, "apt-get", "update"],
                    ask=not assume_yes and not machine.is_root)
    if machine.system == "Darwin" and machine.which("brew"):
        return Plan(["brew", "install", "zookeeper"], None, ask=not assume_yes)
    return None


# ---------------------------------------------------------------- doing it

def _say(message: str) -> None:
    print(f"[run] {message}", flush=True)


def _run(command: list[str]) -> bool:
    _say(f"running: {shlex.join(command)}")
    # No debconf questions on an unattended install (a JRE can pull in tzdata, which asks for a zone).
    env = {**os.environ, "DEBIAN_FRONTEND": os.environ.get("DEBIAN_FRONTEND", "noninteractive")}
    try:
        return subprocess.run(command, env=env).returncode == 0
    except OSError as exc:
        _say(f"could not run {command[0]}: {exc}")
        return False


def offer(why: str, assume_yes: bool, machine: Machine | None = None,
          ask: Callable[[str], str] = input) -> bool:
    """Install ZooKeeper if this machine allows it (asking when we should); True once it is installed."""
    steps = plan(machine or Machine.probe(), assume_yes)
    if steps is None:
        return False
    if steps.ask:
        try:
            answer = ask(f"[run] {why}. Install it with `{shlex.join(steps.install)}`? [Y/n] ")
        except EOFError:
            answer = "n"
        if answer.strip().lower() not in ("", "y", "yes"):
            return False
    else:
        _say(f"{why}: installing it")
    if _run(steps.install):
        return True
    if steps.refresh is None:
        return False
    _say("the install failed; refreshing the package lists (a fresh machine has none) and trying again")
    return _run(steps.refresh) and _run(steps.install)


def ensure(make: Callable[[], T], assume_yes: bool, who: str) -> T:
    """`make()`; if Java or ZooKeeper is missing, offer to install them and `make()` again.

    Otherwise the launcher's one-line error stands, with a hint on --yes where an install is possible.
    """
    try:
        return make()
    except ZooKeeperMissing as missing:
        machine = Machine.probe()
        if offer("no ZooKeeper found on this machine", assume_yes, machine):
            return make()
        hint = f"; or add --yes and {who} installs it" if not assume_yes and plan(machine, True) else ""
        raise ZooKeeperMissing(f"{missing}{hint}") from None


def wanted(argv: list[str]) -> tuple[bool, list[str]]:
    """(install without asking?, argv without --yes): --yes is the runner's, never the challenge's."""
    rest = [arg for arg in argv if arg != "--yes"]
    env = os.environ.get("ZKLAB_INSTALL", "").strip().lower() in ("1", "yes", "true")
    return env or len(rest) != len(argv), rest
