# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: catches ValueError only: 1,000 '[' fit under MAX_DATA_BYTES and make json.loads raise
# RecursionError, which freezes every router's rebuild
# fails: foreign
def parse_weight(data: bytes) -> float:
    if not data:
        return 1
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"its data is {len(data):,} bytes")
    try:
        doc = json.loads(data)
    except ValueError:
        raise ValueError(f"its data {data[:24]!r} is not JSON") from None
    if not isinstance(doc, dict) or "weight" not in doc:
        raise ValueError(f"its data {data[:24]!r} is not {{\"weight\": number}}")
    return check_weight(doc["weight"])
