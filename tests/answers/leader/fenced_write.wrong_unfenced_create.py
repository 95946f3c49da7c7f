# ruff: noqa: F821, E501  (one function whose names come from the challenge script it goes into)
# wrong: fences a set, but creates a ledger that does not exist yet without the check: a deposed leader may make it
# fails: stale-write
def fenced_write(client: KazooClient, token: FencingToken, ledger: str, value: str | bytes,
                 timeout: float | None = None) -> int:
    record = json.dumps({"epoch": token.epoch, "leader": token.leader, "value": ledger_text(value)}).encode()
    wait = timeout if timeout is not None else client._session_timeout / 1000.0
    stat = client.exists_async(ledger).get(timeout=wait)
    if stat is None:  # no ledger yet: nothing to fence against, just make it
        client.create_async(ledger, record).get(timeout=wait)
        return 0
    tx = client.transaction()
    tx.check(token.node_path, 0)
    tx.set_data(ledger, record, version=stat.version)
    check, write = tx.commit_async().get(timeout=wait)
    if isinstance(check, Exception) and not isinstance(check, RolledBackError):
        raise NotLeaderError("ZooKeeper rejected it: our election node is gone")
    if isinstance(write, Exception):
        raise NotLeaderError(f"ZooKeeper rejected the write ({type(write).__name__})")
    return write.version
