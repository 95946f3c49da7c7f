# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: any node with our GUID is ours, whichever session owns it (a twin forked after the GUID was chosen has one)
# fails: lost-create
def _find_own_node(self) -> tuple[str, int] | None:
    with contextlib.suppress(NoNodeError):
        for child in self.client.get_children(self.path):
            if child.startswith(self._guid + SEP):
                return child, self._session_id()
    return None
