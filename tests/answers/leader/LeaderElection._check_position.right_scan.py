# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: finds itself and the candidates ahead by scanning, with no index arithmetic
def _check_position(self) -> None:
    asked_at = time.monotonic()
    self._sync()
    queue = election_order(self.client.get_children(self.path))
    mine = self._node
    me = next((c for c in queue if mine is not None and c.node == mine[0]), None)
    if me is None or mine[1] != self._session_id():
        self._forget_node("our node is not in the queue")
        return
    ahead = [c for c in queue if c.seq < me.seq]
    if not ahead:
        self._claim(me.seq, asked_at)
        return
    if not self.client.exists(self._node_path(ahead[-1].node), watch=self._predecessor_changed):
        self._wake.set()
