# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: stops acting on SUSPENDED and LOST but never wakes the thread, so nobody looks again
# fails: suspended, rejoin
def _on_connection_change(self, state: str) -> None:
    if state == KazooState.SUSPENDED:
        self._set_leader(False, "connection SUSPENDED")
    elif state == KazooState.LOST:
        self._set_leader(False, "session LOST")
        self._node = None
