# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: no SUSPENDED or LOST handling at all: it only wakes the thread
# fails: suspended
def _on_connection_change(self, state: str) -> None:
    self._wake.set()
