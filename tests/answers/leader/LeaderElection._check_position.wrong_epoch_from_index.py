# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: claims with its place in the queue (always 0 for the leader), not its node's sequence: epochs never grow
# fails: in-order
def _check_position(self) -> None:
    asked_at = time.monotonic()
    self._sync()
    queue = election_order(self.client.get_children(self.path))
    nodes, mine = [c.node for c in queue], self._node
    if mine is None or mine[0] not in nodes or mine[1] != self._session_id():
        return self._forget_node("our node is gone")
    position = nodes.index(mine[0])
    if position == 0:
        self._claim(position, asked_at)
    elif self.client.exists(self._node_path(nodes[position - 1]), watch=self._predecessor_changed) is None:
        self._wake.set()
