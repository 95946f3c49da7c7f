# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: one table of what each state means, then the wake-up
def _on_connection_change(self, state: str) -> None:
    stops = {KazooState.SUSPENDED: "connection suspended", KazooState.LOST: "session expired"}
    if state in stops:
        self._set_leader(False, stops[state])
    if state == KazooState.LOST:
        self._node = None
    self._wake.set()
