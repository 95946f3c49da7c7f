# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: Python's hash(), salted per process: two routers disagree
# fails: agree
def point(label: Key) -> int:
    return hash(label) % 2**128
