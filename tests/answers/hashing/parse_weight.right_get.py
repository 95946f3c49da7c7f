# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# right: decodes first, then looks the weight up with get
def parse_weight(data: bytes) -> float:
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"its data is {len(data)} bytes: too large")
    if data == b"":
        return 1
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("its data is not JSON") from None
    weight = doc.get("weight") if isinstance(doc, dict) else None
    if weight is None:
        raise ValueError('its data is not {"weight": number}')
    return check_weight(weight)
