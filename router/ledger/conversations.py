"""Stored Responses-API answers in the ledger database: written when an answer with ``store: true``
is complete, read by ``previous_response_id`` and ``GET /v1/responses/{id}``, deleted by ``DELETE``
or when their retention ends. Every read and delete is scoped to the tenant that stored it."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, select

from router.ledger.schema import responses
from router.ledger.store import LedgerStore


class ResponseStore:
    def __init__(self, ledger: LedgerStore, retention_s: float):
        self.ledger, self.retention_s = ledger, retention_s

    @property
    def enabled(self) -> bool:
        return self.retention_s > 0

    async def put(self, rid: str, tenant: str, response: dict[str, Any], conversation: list[dict[str, Any]],
                  now: float) -> None:
        row = {"id": rid, "tenant": tenant, "created_at": now, "expires_at": now + self.retention_s,
               "response": orjson.dumps(response).decode(), "conversation": orjson.dumps(conversation).decode()}
        async with self.ledger.engine.begin() as conn:
            await conn.execute(insert(responses), [row])

    async def get(self, rid: str, tenant: str, now: float) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """(the response, the conversation it continues) or None: unknown, another tenant's, or expired."""
        q = select(responses.c.response, responses.c.conversation).where(and_(
            responses.c.id == rid, responses.c.tenant == tenant, responses.c.expires_at > now))
        async with self.ledger.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return None if row is None else (orjson.loads(row[0]), orjson.loads(row[1]))

    async def delete(self, rid: str, tenant: str) -> bool:
        async with self.ledger.engine.begin() as conn:
            res = await conn.execute(delete(responses).where(and_(responses.c.id == rid, responses.c.tenant == tenant)))
        return bool(res.rowcount)

    async def prune(self, now: float) -> int:
        """Delete what outlived its retention; how many."""
        async with self.ledger.engine.begin() as conn:
            res = await conn.execute(delete(responses).where(responses.c.expires_at <= now))
        return int(res.rowcount or 0)
