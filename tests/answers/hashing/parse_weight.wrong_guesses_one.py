# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: guesses weight 1 for a record without a weight ({} or {"foo": 1}) instead of refusing it
# fails: foreign
def parse_weight(data: bytes) -> float:
    if not data:
        return 1
    if len(data) > MAX_DATA_BYTES:
        raise ValueError("too big")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("not an object")
    return check_weight(doc.get("weight", 1))
