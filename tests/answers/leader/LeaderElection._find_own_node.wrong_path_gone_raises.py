# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: reads the children without a guard: when the election path was deleted after a lost reply to create,
# NoNodeError comes back on every try, and the candidate never joins again
# fails: lost-create
def _find_own_node(self) -> tuple[str, int] | None:
    for child in self.client.get_children(self.path):
        if child.startswith(self._guid + SEP):
            stat = self.client.exists(self._node_path(child))
            if stat is not None and stat.ephemeralOwner == self._session_id():
                return child, stat.ephemeralOwner
    return None
