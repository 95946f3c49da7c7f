# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: trusts that a create whose reply was lost made nothing, and creates again
# fails: lost-create
def _find_own_node(self) -> tuple[str, int] | None:
    return None
