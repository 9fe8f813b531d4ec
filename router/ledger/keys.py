"""Virtual keys issued over HTTP and the audit log, in the ledger database.

Every replica polls ``version()`` (the newest change and the row count: one indexed read) and
reloads the rows when it moves, so a key created, changed or revoked on one replica holds on every
replica within the poll interval (router.services)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import func, insert, select, update

from router.ledger.schema import api_keys, audit
from router.ledger.store import LedgerStore

_JSON_COLUMNS = ("models", "metadata")


def _decode(row: Any) -> dict[str, Any]:
    out = {str(k): v for k, v in row.items()}  # (SQLAlchemy's quoted_name keys are not plain str)
    for c in _JSON_COLUMNS:
        out[c] = orjson.loads(out[c]) if out.get(c) else None
    out["revoked"], out["budget_soft"] = bool(out["revoked"]), bool(out["budget_soft"])
    return out


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    for c in _JSON_COLUMNS:
        if c in out:
            out[c] = None if out[c] is None else orjson.dumps(out[c]).decode()
    return out


class KeyTable:
    def __init__(self, ledger: LedgerStore):
        self.ledger = ledger

    async def version(self) -> tuple[float | None, int]:
        async with self.ledger.engine.connect() as conn:
            row = (
                await conn.execute(select(func.max(api_keys.c.updated_at), func.count()).select_from(api_keys))
            ).one()
        return row[0], int(row[1])

    async def rows(self) -> list[dict[str, Any]]:
        async with self.ledger.engine.connect() as conn:
            return [_decode(r) for r in (await conn.execute(select(api_keys))).mappings()]

    async def get(self, key_id: str) -> dict[str, Any] | None:
        async with self.ledger.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        return None if row is None else _decode(row)

    async def create(self, values: dict[str, Any], actor: str) -> None:
        now = time.time()
        row = _encode({**values, "created_at": now, "updated_at": now})
        async with self.ledger.engine.begin() as conn:
            await conn.execute(insert(api_keys), [row])
            await conn.execute(insert(audit), [_audit(actor, "key.create", values["id"], _public(values), now)])

    async def update(
        self, key_id: str, values: dict[str, Any], actor: str, action: str, detail: dict[str, Any] | None = None
    ) -> bool:
        now = time.time()
        async with self.ledger.engine.begin() as conn:
            res = await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(**_encode(values), updated_at=now)
            )
            if not res.rowcount:
                return False
            await conn.execute(
                insert(audit), [_audit(actor, action, key_id, detail if detail is not None else _public(values), now)]
            )
        return True

    async def record(self, actor: str, action: str, target: str | None, detail: dict[str, Any] | None = None) -> None:
        async with self.ledger.engine.begin() as conn:
            await conn.execute(insert(audit), [_audit(actor, action, target, detail or {}, time.time())])

    async def audit_log(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        q = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if before is not None:
            q = q.where(audit.c.id < before)
        async with self.ledger.engine.connect() as conn:
            rows = [{str(k): v for k, v in r.items()} for r in (await conn.execute(q)).mappings()]
        for r in rows:
            r["detail"] = orjson.loads(r["detail"]) if r["detail"] else {}
        return rows


def _public(values: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a change: never a secret or its hash."""
    return {k: v for k, v in values.items() if k not in ("hash", "previous_hash")}


def _audit(actor: str, action: str, target: str | None, detail: dict[str, Any], ts: float) -> dict[str, Any]:
    return {"ts": ts, "actor": actor, "action": action, "target": target, "detail": orjson.dumps(detail).decode()}
