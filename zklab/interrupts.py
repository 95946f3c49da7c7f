"""Ctrl-C and SIGTERM for the lab's tools: the one way they turn a signal into an exception.

Rules:
- each signal raises an exception in the main thread (KeyboardInterrupt, Terminated), so that `finally`
  blocks stop what the tool started: the script's process, ZooKeeper, the work folder. A tool that treats
  both alike (the runner's commands, tree) asks for KeyboardInterrupt on SIGTERM too;
- Python can swallow that exception: raised inside an at-fork callback (the signal landed while
  `subprocess` forked), it is only printed as "Exception ignored", and the tool would run on as if the
  signal never came. So the handler also notes it, the unraisable hook stays quiet about it, and the
  tool's loops call `raise_noted()`, which raises it again;
- a signal that was ignored when the tool started (`nohup`, a background job's SIGINT) stays ignored.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

# The signals noted since install(), as the exceptions they raised.
_noted: list[BaseException] = []
# What each signal raises, as install() was asked.
_raises: dict[int, type[BaseException]] = {}


class Terminated(Exception):
    """SIGTERM: clean up and leave."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _noted.append(_raises.get(signum, Terminated)())
    raise _noted[-1]


def _quiet_about_ours(unraisable: sys.UnraisableHookArgs) -> None:
    if not isinstance(unraisable.exc_value, (KeyboardInterrupt, Terminated)):
        sys.__unraisablehook__(unraisable)


def install(sigterm: type[BaseException] = Terminated) -> Callable[[], None]:
    """Handle both signals as the rules say (SIGTERM raises `sigterm`); returns what puts the previous
    handlers back."""
    _noted.clear()
    _raises.update({signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: sigterm})
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum, handler in previous.items():
        if handler is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)
    sys.unraisablehook = _quiet_about_ours

    def restore() -> None:
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, which we cannot put back
                signal.signal(signum, handler)
        sys.unraisablehook = sys.__unraisablehook__
    return restore


def raise_noted() -> None:
    """Raise again the first signal's exception, if Python swallowed it; only on the main thread, where Python
    raises a signal's exception (a helper thread that polls, like the one that starts ZooKeeper, goes on)."""
    if _noted and threading.current_thread() is threading.main_thread():
        raise _noted[0]
