# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: hashes str(label): a key given as bytes hashes as "b'...'", elsewhere than the same key as text
# fails: points
def point(label: str | bytes) -> int:
    return mmh3.hash128(str(label), SEED)
