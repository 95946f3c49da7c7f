# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: takes SUSPENDED for LOST: forgets its node, so it joins again behind the node its session still owns
# fails: suspended
def _on_connection_change(self, state: str) -> None:
    if state in (KazooState.SUSPENDED, KazooState.LOST):
        self._set_leader(False, f"connection {state}")
        self._node = None
    self._wake.set()
