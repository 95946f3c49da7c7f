# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: no sync: a follower cut off from its peers keeps answering from its stale copy
# fails: isolated-follower
def _sync(self) -> None:
    pass
