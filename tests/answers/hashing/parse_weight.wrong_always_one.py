# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: refuses foreign data, but every member of ours weighs 1: the weight it checked is never returned
# fails: routers, weight-change
def parse_weight(data: bytes) -> float:
    if not data:
        return 1
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"its data is {len(data)} bytes: too large")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError("its data is not JSON") from None
    if not isinstance(doc, dict) or "weight" not in doc:
        raise ValueError("its data is not ours")
    check_weight(doc["weight"])
    return 1
