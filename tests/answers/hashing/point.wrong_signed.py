# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: signed 128-bit: half the points are negative, off the ring's positions 0 to 2**128 - 1
# fails: points
def point(label: str | bytes) -> int:
    return mmh3.hash128(label, SEED, signed=True)
