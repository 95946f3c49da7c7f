# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: when the election path is gone (deleted by hand), only looks again: it keeps its node and its lead
# fails: deleted-node
def _check_position(self) -> None:
    asked_at = time.monotonic()
    self._sync()
    try:
        children = self.client.get_children(self.path)
    except NoNodeError:
        return self._wake.set()  # the path vanished: look again until it is back
    queue = election_order(children)
    nodes, mine = [c.node for c in queue], self._node
    if mine is None or mine[0] not in nodes or mine[1] != self._session_id():
        return self._forget_node("our node is gone")
    position = nodes.index(mine[0])
    if position == 0:
        self._claim(queue[0].seq, asked_at)
    elif self.client.exists(self._node_path(nodes[position - 1]), watch=self._predecessor_changed) is None:
        self._wake.set()
