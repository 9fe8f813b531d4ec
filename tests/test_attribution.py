"""Cost by user and tag: the ledger records a request's user and its configured tags (from the body's
metadata or the x-switchyard-tags header); the usage API grouped by user and by a tag equals SQL over
the ledger; FOCUS carries them in Tags; budgets and rate limits scope to a user or a tag value; and
the number of distinct values stays within the configured bound, per process and across replicas."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import redis

from tests.conftest import (
    ADMIN_KEY,
    GATEWAY_ENV,
    KEY_A,
    KEY_B,
    SWITCHYARD,
    Proc,
    inside_one_minute,
    ledger_record,
    start_gateway,
)
from tests.servers import flushable_redis_url
from tests.test_focus import export

H = {"authorization": f"Bearer {KEY_A}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SEARCH_BUDGET = 0.0004


def config(extra: str = "", max_values: int = 5) -> str:
    return f"""
model_list:
  - model_name: sim
    litellm_params: {{model: simulated/small, speed: 50}}
attribution: {{tags: [feature, team], max_values: {max_values}}}
limits:
  budgets:
    - {{scope: tag, id: feature=search, period: day, usd: {SEARCH_BUDGET}}}
  rate_limits:
    - {{scope: user, id: '*', rpm: 10}}
    - {{scope: user, id: vip, rpm: 1}}
auth:
  admin_key: os.environ/TEST_ADMIN_KEY
  keys:
    - {{id: tenant-a, tenant: a, key: os.environ/TEST_KEY_A}}
    - {{id: tenant-b, tenant: b, key: os.environ/TEST_KEY_B}}
{extra}"""


def chat(
    gw: Proc,
    key: str = KEY_A,
    user: str | None = None,
    meta: dict[str, str] | None = None,
    header: str | None = None,
    max_tokens: int = 8,
) -> httpx.Response:
    body: dict[str, Any] = {
        "model": "sim",
        "messages": [{"role": "user", "content": "hello there"}],
        "max_tokens": max_tokens,
    }
    if user is not None:
        body["user"] = user
    if meta is not None:
        body["metadata"] = meta
    headers = {"authorization": f"Bearer {key}", **({"x-switchyard-tags": header} if header else {})}
    return httpx.post(gw.base + "/v1/chat/completions", headers=headers, json=body, timeout=30)


def ledger(gw: Proc) -> sqlite3.Connection:
    return sqlite3.connect(Path(gw.log.parent) / ".switchyard" / "ledger.db")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    g = start_gateway(tmp_path_factory.mktemp("attribution"), config())
    yield g
    g.stop()


def test_user_and_tags_reach_the_ledger_and_the_usage_api_equals_sql(gw: Proc) -> None:
    sent = [
        ("alice", {"feature": "chat", "team": "core"}, None),
        ("bob", {"feature": "chat"}, None),
        ("alice", None, "feature=summarize,team=growth,ignored=x"),
        ("carol", {"feature": "chat", "env": "x"}, None),
        (None, {"team": "core"}, None),
    ]
    rids = []
    for user, meta, header in sent:
        r = chat(gw, user=user, meta=meta, header=header)
        assert r.status_code == 200, r.text
        rids.append(r.headers["x-request-id"])
    recs = [ledger_record(gw, KEY_A, rid) for rid in rids]
    assert [r["end_user"] for r in recs] == ["alice", "bob", "alice", "carol", None]
    # only the configured keys; the header wins over the body
    assert [r["tags"] for r in recs] == [
        {"feature": "chat", "team": "core"},
        {"feature": "chat"},
        {"feature": "summarize", "team": "growth"},
        {"feature": "chat"},
        {"team": "core"},
    ]
    db = ledger(gw)
    for group, sql in (
        ("user", "end_user"),
        ("tag:feature", "json_extract(tags, '$.feature')"),
        ("tag:team", "json_extract(tags, '$.team')"),
    ):
        want = {
            k: (n, round(c, 12))
            for k, n, c in db.execute(
                f"SELECT {sql}, COUNT(*), SUM(charge_usd) FROM requests WHERE tenant = 'a' GROUP BY 1"
            )
        }
        rows = httpx.get(gw.base + f"/v1/usage?bucket=none&start=0&group_by={group}", headers=H).json()["data"]
        got = {r[group]: (r["requests"], round(r["charge_usd"], 12)) for r in rows}
        assert got == want, group
    # filters: one user, one tag value
    alice = httpx.get(gw.base + "/v1/usage?bucket=none&start=0&user=alice", headers=H).json()["data"][0]
    assert alice["requests"] == 2
    chat_tag = httpx.get(gw.base + "/admin/usage?bucket=none&start=0&tag=feature=chat", headers=ADMIN).json()["data"][0]
    assert chat_tag["requests"] == 3
    assert httpx.get(gw.base + "/v1/usage?group_by=tag:bad key", headers=H).status_code == 400
    assert httpx.get(gw.base + "/v1/usage?tag=nofield", headers=H).status_code == 400
    # the spend log carries them too
    page = httpx.get(gw.base + "/v1/requests?start=0&user=alice", headers=H).json()["data"]
    assert {p["end_user"] for p in page} == {"alice"} and len(page) == 2


def test_a_budget_scoped_to_a_tag_is_enforced(gw: Proc) -> None:
    codes = [chat(gw, meta={"feature": "search"}, max_tokens=200).status_code for _ in range(40)]
    assert 200 in codes and codes[-1] == 429, codes
    refused = chat(gw, meta={"feature": "search"}, max_tokens=200)
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert chat(gw, meta={"feature": "other"}, max_tokens=200).status_code == 200  # another value: its own room
    spent = (
        ledger(gw)
        .execute("SELECT SUM(charge_usd) FROM requests WHERE json_extract(tags, '$.feature') = 'search'")
        .fetchone()[0]
    )
    assert spent <= SEARCH_BUDGET
    view = httpx.get(gw.base + "/admin/insights/budgets", headers=ADMIN).json()
    rows = view["data"] if isinstance(view, dict) and "data" in view else view["budgets"]
    row = next(b for b in rows if b["scope"] == "tag")
    assert row["id"] == "feature=search" and row["spent_usd"] == pytest.approx(spent, rel=1e-9)


def test_a_rate_limit_per_user(gw: Proc) -> None:
    inside_one_minute(8)
    assert [chat(gw, user="dave").status_code for _ in range(11)] == [200] * 10 + [429]
    assert chat(gw, user="erin").status_code == 200  # each user separately
    # every rule that matches holds: vip's own (1 a minute) as well as every user's (10)
    assert [chat(gw, user="vip").status_code for _ in range(2)] == [200, 429]


def test_distinct_users_stay_within_the_bound(gw: Proc) -> None:
    # tenant b's own flood (tenant a's users do not count against it); the values beyond the bound are
    # "(other)", which shares one rate limit: 7 of them here, within its 10 a minute
    inside_one_minute(8)
    for i in range(12):
        assert chat(gw, key=KEY_B, user=f"flood-{i}", meta={"feature": f"f{i}"}).status_code == 200
    rid = chat(gw, key=KEY_B, user="flood-13").headers["x-request-id"]
    assert ledger_record(gw, KEY_B, rid)["end_user"] == "(other)"
    users = [u for (u,) in ledger(gw).execute("SELECT DISTINCT end_user FROM requests WHERE tenant = 'b'")]
    assert sorted(users) == ["(other)", "flood-0", "flood-1", "flood-2", "flood-3", "flood-4"]
    features = {
        f
        for (f,) in ledger(gw).execute(
            "SELECT DISTINCT json_extract(tags, '$.feature') FROM requests WHERE tenant = 'b'"
        )
    }
    assert features == {"f0", "f1", "f2", "f3", "f4", "(other)", None}
    # the bound is per tenant: tenant a's own users were not squeezed by b's flood
    assert chat(gw, user="frank").status_code == 200


def sent_and_recorded(gw: Proc, users_and_features: list[tuple[str, str | None]], key: str = KEY_A) -> None:
    """Traffic of a test's own, so that it passes alone or in any order (users and tag values the
    module's other tests also send, so the per-tenant cardinality bound sees nothing they do not),
    in the ledger before the test reads it."""
    for user, feature in users_and_features:
        meta = {"feature": feature} if feature is not None else None
        ledger_record(gw, key, chat(gw, key=key, user=user, meta=meta).headers["x-request-id"])


def test_focus_tags_carry_user_and_tags(gw: Proc, tmp_path) -> None:
    sent_and_recorded(gw, [("alice", "chat"), ("bob", "chat")])
    sent_and_recorded(gw, [(f"flood-{i}", None) for i in range(6)], key=KEY_B)  # the sixth: "(other)"
    rows = export(gw, time.time() + 1, tmp_path / "focus.csv")
    tagged = [r for r in rows if json.loads(r["Tags"]).get("feature") == "chat"]
    assert tagged and all(json.loads(r["Tags"])["model"] == "sim" for r in tagged)
    want = (
        ledger(gw)
        .execute("SELECT SUM(charge_usd) FROM requests WHERE json_extract(tags, '$.feature') = 'chat'")
        .fetchone()[0]
    )
    assert sum(float(r["BilledCost"]) for r in tagged) == pytest.approx(want, rel=1e-9)
    users = {json.loads(r["Tags"]).get("user") for r in rows}
    assert {"alice", "bob", "(other)"} <= users


def test_a_value_a_rule_names_is_kept_beyond_the_bound() -> None:
    import asyncio

    from router.accounting.attribution import Attribution, rule_values
    from router.config_sections import AttributionConfig, BudgetRule, RateLimitRule
    from router.accounting.state import MemoryState

    exempt = rule_values(
        [BudgetRule(scope="tag", id="team=core", period="day", usd=1)],
        [RateLimitRule(scope="user", id="vip", rpm=1), RateLimitRule(scope="user", id="*", rpm=1)],
    )
    assert exempt == [("tag:team", "core"), ("user", "vip")]
    att = Attribution(AttributionConfig(tags=["team"], max_values=2), MemoryState(), exempt)

    async def run() -> list[Any]:
        return [
            await att.resolve("t", {"user": u, "metadata": {"team": t}}, None)
            for u, t in (("a", "x"), ("b", "y"), ("c", "z"), ("vip", "core"), ("a", "x"))
        ]

    got = [(a.user, a.tags) for a in asyncio.run(run())]
    assert got == [
        ("a", {"team": "x"}),
        ("b", {"team": "y"}),
        ("(other)", {"team": "(other)"}),
        ("vip", {"team": "core"}),
        ("a", {"team": "x"}),
    ]


def test_tag_rules_name_configured_tags(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(config().replace("feature=search", "nope=search"))
    res = subprocess.run(
        [SWITCHYARD, "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, **GATEWAY_ENV},
    )
    assert res.returncode != 0 and "'nope' is not one of attribution.tags (feature, team)" in res.stdout + res.stderr


def test_the_bound_holds_across_replicas_through_redis(tmp_path) -> None:
    url = flushable_redis_url()
    r = redis.Redis.from_url(url)
    r.flushdb()
    extra = "storage:\n  redis_url: os.environ/SY_TEST_REDIS_URL\n"
    gws = [start_gateway(tmp_path / f"r{i}", config(extra, max_values=4), {"SY_TEST_REDIS_URL": url}) for i in range(2)]
    try:
        for i in range(10):
            assert chat(gws[i % 2], key=KEY_B, user=f"u{i}").status_code == 200
        kept = set()
        for g in gws:
            rid = chat(g, key=KEY_B, user="u0").headers["x-request-id"]  # admitted on one replica, known to both
            assert ledger_record(g, KEY_B, rid)["end_user"] == "u0"
            kept |= {u for (u,) in ledger(g).execute("SELECT DISTINCT end_user FROM requests")}
        assert kept == {"u0", "u1", "u2", "u3", "(other)"}
        day = int(time.time() // 86400)
        assert r.scard(f"sy:card:b:user:{day}") == 4 and 0 < r.ttl(f"sy:card:b:user:{day}") <= 2 * 86400
    finally:
        for g in gws:
            g.stop()


def test_report_by_user_and_by_tag(gw: Proc) -> None:
    sent_and_recorded(gw, [("alice", "chat"), ("bob", "summarize"), ("carol", None)])
    for by in ("user", "tag:feature"):
        res = subprocess.run(
            [SWITCHYARD, "report", "--by", by, "--since", "1d", "--json", "--url", gw.base, "--key", KEY_A],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        got = {r[by]: r["charge_usd"] for r in json.loads(res.stdout)["rows"]}
        rows = httpx.get(gw.base + f"/v1/usage?bucket=none&start=1d&group_by={by}", headers=H).json()["data"]
        assert got == {r[by]: r["charge_usd"] for r in rows} and len(got) >= 3
