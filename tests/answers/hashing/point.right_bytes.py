# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: the same 128 bits read from mmh3's bytes, little-endian
def point(label: Key) -> int:
    return int.from_bytes(mmh3.hash_bytes(label, SEED), "little")
