"""Virtual keys over HTTP (POST/GET/PATCH /admin/keys, revoke, rotate) and the audit log: on one
gateway, and across two replicas sharing PostgreSQL and Redis (a change on one holds on the other
within 2 seconds; a key's limits hold across both)."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.conftest import ADMIN_KEY, KEY_A, Proc, inside_one_minute, mock_config, start_gateway, start_mock
from tests.servers import flushable_redis_url, fresh_database, shared_database_url

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def chat(gw: Proc, key: str, **extra: Any) -> httpx.Response:
    return httpx.post(
        gw.base + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, json={**CHAT, **extra}, timeout=30
    )


def within(seconds: float, ok: Callable[[], bool]) -> float:
    """How long until ``ok()`` held (checked every 50 ms); fails past ``seconds``."""
    t0 = time.monotonic()
    while not ok():
        assert time.monotonic() - t0 < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def kgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("keys")
    mock = start_mock(d / "mock")
    gw = start_gateway(d / "gw", mock_config(mock.base))
    yield gw
    gw.stop()
    mock.stop()


def test_issue_use_list_change_revoke(kgw: Proc) -> None:
    r = httpx.post(
        kgw.base + "/admin/keys",
        headers=ADMIN,
        json={
            "id": "app-one",
            "tenant": "apps",
            "name": "App one",
            "models": ["mock-gpt"],
            "metadata": {"team": "search"},
        },
    )
    assert r.status_code == 201, r.text
    made = r.json()
    secret = made.pop("key")
    assert secret.startswith("sk-sy-app-one.") and made["tenant"] == "apps" and made["source"] == "api"
    assert chat(kgw, secret).status_code == 200  # at once on the replica that issued it
    assert chat(kgw, secret, model="fast-sim").status_code == 403  # outside its allow-list
    listed = httpx.get(kgw.base + "/admin/keys", headers=ADMIN).json()["data"]
    assert {k["id"] for k in listed} >= {"app-one", "tenant-a", "tenant-b"}
    assert secret not in str(listed) and "sha256$" not in str(listed)  # never the secret or its hash
    assert httpx.get(kgw.base + "/admin/keys/app-one", headers=ADMIN).json()["metadata"] == {"team": "search"}
    # the key's usage is billed to its tenant
    rid = chat(kgw, secret).headers["x-request-id"]
    row = within(5, lambda: httpx.get(f"{kgw.base}/admin/requests/{rid}", headers=ADMIN).status_code == 200)
    assert row < 5 and httpx.get(f"{kgw.base}/admin/requests/{rid}", headers=ADMIN).json()["tenant"] == "apps"
    # widen its models, then revoke it
    r = httpx.patch(kgw.base + "/admin/keys/app-one", headers=ADMIN, json={"models": ["mock-gpt", "fast-sim"]})
    assert r.status_code == 200 and r.json()["models"] == ["mock-gpt", "fast-sim"]
    assert chat(kgw, secret, model="fast-sim").status_code == 200
    assert httpx.post(kgw.base + "/admin/keys/app-one/revoke", headers=ADMIN).json()["revoked"] is True
    assert chat(kgw, secret).status_code == 401
    # the audit log holds each action, never a secret
    log = httpx.get(kgw.base + "/admin/audit", headers=ADMIN).json()["data"]
    mine = [(e["action"], e["actor"]) for e in log if e["target"] == "app-one"]
    assert mine == [("key.revoke", "admin"), ("key.change", "admin"), ("key.create", "admin")]
    assert "sha256$" not in str(log) and secret not in str(log)


def test_rotation_grace_expiry_and_limits(kgw: Proc) -> None:
    secret = httpx.post(kgw.base + "/admin/keys", headers=ADMIN, json={"id": "app-two", "tenant": "apps"}).json()["key"]
    rot = httpx.post(kgw.base + "/admin/keys/app-two/rotate", headers=ADMIN, json={"grace_seconds": 1.5}).json()
    new = rot["key"]
    assert new != secret and rot["previous_secret_valid_until"] > time.time()
    assert chat(kgw, new).status_code == 200 and chat(kgw, secret).status_code == 200  # both, during the grace
    within(5, lambda: chat(kgw, secret).status_code == 401)  # the old one, not after it
    assert chat(kgw, new).status_code == 200
    # an expiry, and a rate limit set on the key
    httpx.patch(kgw.base + "/admin/keys/app-two", headers=ADMIN, json={"rpm": 2})
    assert [chat(kgw, new).status_code for _ in range(3)] == [200, 200, 429]
    httpx.patch(kgw.base + "/admin/keys/app-two", headers=ADMIN, json={"rpm": None, "expires_at": time.time() + 1})
    within(5, lambda: chat(kgw, new).status_code == 401)


@pytest.mark.parametrize(
    "body,status,param",
    [
        ({"tenant": "x", "id": "Bad Id"}, 400, "id"),
        ({"id": "no-tenant"}, 400, "tenant"),
        ({"tenant": "x", "rpm": -1}, 400, "rpm"),
        ({"tenant": "x", "budget": {"usd": 0}}, 400, "budget.usd"),
        ({"tenant": "x", "surprise": 1}, 400, "surprise"),
        ({"tenant": "x", "id": "tenant-a"}, 409, "id"),  # a config key's id
    ],
)
def test_bad_key_requests(kgw: Proc, body: dict, status: int, param: str) -> None:
    r = httpx.post(kgw.base + "/admin/keys", headers=ADMIN, json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param


def test_only_the_admin_key_manages_keys(kgw: Proc) -> None:
    assert (
        httpx.post(
            kgw.base + "/admin/keys", headers={"authorization": f"Bearer {KEY_A}"}, json={"tenant": "a"}
        ).status_code
        == 403
    )
    assert httpx.get(kgw.base + "/admin/keys").status_code == 401
    assert httpx.get(kgw.base + "/admin/keys/nope", headers=ADMIN).status_code == 404


def test_a_tenant_admin_manages_its_own_tenants_keys_only(kgw: Proc) -> None:
    # the operator makes tenant b's admin, who may use (and so grant) mock-gpt and fast-sim only
    made = httpx.post(
        kgw.base + "/admin/keys",
        headers=ADMIN,
        json={"tenant": "b", "tenant_admin": True, "models": ["mock-gpt", "fast-sim"]},
    ).json()
    assert made["tenant_admin"] is True
    tadmin = {"authorization": f"Bearer {made['key']}"}
    other = httpx.post(kgw.base + "/admin/keys", headers=ADMIN, json={"tenant": "a", "name": "a's"}).json()
    # it issues keys for its own tenant (the tenant by default), within the tenant's models ...
    mine = httpx.post(kgw.base + "/admin/keys", headers=tadmin, json={"name": "ci", "models": ["fast-sim"], "rpm": 5})
    assert mine.status_code == 201, mine.text
    assert mine.json()["tenant"] == "b" and chat(kgw, mine.json()["key"], model="fast-sim").status_code == 200
    # ... and no further: another tenant, a model its tenant may not use, a tenant admin of its own
    for body, code in (
        ({"tenant": "a"}, "tenant_forbidden"),
        ({"tenant_admin": True}, "tenant_forbidden"),
        ({"models": ["mock-400"]}, "models_not_allowed"),
        ({}, "models_not_allowed"),
    ):
        r = httpx.post(kgw.base + "/admin/keys", headers=tadmin, json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == code, (body, r.text)
    # it sees and changes its tenant's keys only; another tenant's are not there for it
    listed = httpx.get(kgw.base + "/admin/keys", headers=tadmin).json()["data"]
    assert {k["tenant"] for k in listed} == {"b"} and mine.json()["id"] in {k["id"] for k in listed}
    for method, path in (("GET", ""), ("PATCH", ""), ("POST", "/revoke"), ("POST", "/rotate")):
        r = httpx.request(
            method,
            kgw.base + f"/admin/keys/{other['id']}{path}",
            headers=tadmin,
            json={"name": "x"} if method == "PATCH" else None,
        )
        assert r.status_code == 404, (method, path, r.text)
    r = httpx.patch(kgw.base + f"/admin/keys/{mine.json()['id']}", headers=tadmin, json={"models": ["mock-400"]})
    assert r.status_code == 403
    r = httpx.post(kgw.base + f"/admin/keys/{mine.json()['id']}/revoke", headers=tadmin)
    assert r.status_code == 200 and chat(kgw, mine.json()["key"], model="fast-sim").status_code == 401
    # the audit log names who did it; the log itself is the operator's
    log = httpx.get(kgw.base + "/admin/audit", headers=ADMIN).json()["data"]
    assert any(
        e["actor"] == made["id"] and e["action"] == "key.revoke" and e["target"] == mine.json()["id"] for e in log
    )
    assert httpx.get(kgw.base + "/admin/audit", headers=tadmin).status_code == 403
    assert httpx.get(kgw.base + "/admin/usage", headers=tadmin).status_code == 403  # no other admin powers
    # an ordinary key of the tenant is no tenant admin
    assert httpx.get(kgw.base + "/admin/keys", headers={"authorization": f"Bearer {other['key']}"}).status_code == 403


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    d = tmp_path_factory.mktemp("key-replicas")
    url, drop = fresh_database(shared_database_url())
    mock = start_mock(d / "mock")
    cfg = mock_config(mock.base) + (
        "storage: {database_url: os.environ/KEYS_DB, redis_url: os.environ/KEYS_REDIS}\n"
        "limits: {reconcile_interval: 1}\n"
    )
    redis_url = flushable_redis_url()
    import redis

    redis.Redis.from_url(redis_url).flushdb()  # no counters or budgets left from an earlier run
    env = {"KEYS_DB": url, "KEYS_REDIS": redis_url}
    a, b = start_gateway(d / "a", cfg, env, name="a"), start_gateway(d / "b", cfg, env, name="b")
    yield a, b
    for p in (a, b, mock):
        p.stop()
    drop()


def test_a_change_on_one_replica_holds_on_the_other_within_two_seconds(replicas: tuple[Proc, Proc]) -> None:
    a, b = replicas
    secret = httpx.post(a.base + "/admin/keys", headers=ADMIN, json={"id": "multi", "tenant": "apps"}).json()["key"]
    assert within(2.0, lambda: chat(b, secret).status_code == 200) < 2.0
    assert httpx.post(b.base + "/admin/keys/multi/revoke", headers=ADMIN).status_code == 200
    assert chat(b, secret).status_code == 401
    assert within(2.0, lambda: chat(a, secret).status_code == 401) < 2.0
    # rotated on A: the old secret works on B during the grace, and not after
    old = httpx.post(a.base + "/admin/keys", headers=ADMIN, json={"id": "multi-2", "tenant": "apps"}).json()["key"]
    new = httpx.post(a.base + "/admin/keys/multi-2/rotate", headers=ADMIN, json={"grace_seconds": 3}).json()["key"]
    within(2.0, lambda: chat(b, new).status_code == 200)
    assert chat(b, old).status_code == 200
    within(6.0, lambda: chat(b, old).status_code == 401)


def test_a_keys_limits_hold_across_replicas(replicas: tuple[Proc, Proc]) -> None:
    a, b = replicas
    secret = httpx.post(
        a.base + "/admin/keys",
        headers=ADMIN,
        json={"id": "limited", "tenant": "apps", "rpm": 4, "budget": {"usd": 50, "period": "day"}},
    ).json()["key"]
    within(2.0, lambda: httpx.get(b.base + "/admin/keys/limited", headers=ADMIN).status_code == 200)
    time.sleep(1.2)  # B's poll has applied the key (and its limits) by now
    inside_one_minute()  # rpm counts per clock minute: a burst across two would be counted apart
    codes = [chat(p, secret).status_code for p in (a, b, a, b, a, b)]
    assert codes.count(200) == 4 and codes[-2:] == [429, 429], codes
    # the budget, set to less than what was spent, refuses on both
    httpx.patch(a.base + "/admin/keys/limited", headers=ADMIN, json={"rpm": None, "budget": {"usd": 1e-9}})
    time.sleep(1.2)
    for p in (a, b):
        r = chat(p, secret)
        assert r.status_code == 429 and "Budget exhausted" in r.json()["error"]["message"], r.text


def test_the_cli_issues_lists_rotates_and_revokes(kgw: Proc) -> None:
    import subprocess

    from tests.conftest import SWITCHYARD

    def run(*args: str) -> str:
        res = subprocess.run(
            [SWITCHYARD, "keys", *args, "--url", kgw.base],
            capture_output=True,
            text=True,
            env={**__import__("os").environ, "SWITCHYARD_ADMIN_KEY": ADMIN_KEY},
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    out = run("create", "cli-key", "--tenant", "apps", "--models", "mock-gpt", "--rpm", "100")
    secret = out.rsplit(" ", 1)[-1].strip()
    assert secret.startswith("sk-sy-cli-key.") and chat(kgw, secret).status_code == 200
    assert httpx.get(kgw.base + "/admin/keys/cli-key", headers=ADMIN).json()["rpm"] == 100
    assert "cli-key" in run("list", "--tenant", "apps") and secret not in run("list")
    new = run("rotate", "cli-key", "--grace-seconds", "0").split("shown once: ")[1].split()[0]
    assert chat(kgw, new).status_code == 200 and chat(kgw, secret).status_code == 401
    run("revoke", "cli-key")
    assert chat(kgw, new).status_code == 401
    bad = subprocess.run(
        [SWITCHYARD, "keys", "revoke", "cli-key", "--url", kgw.base, "--admin-key", "wrong"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "401" in bad.stderr


def test_the_keys_page_issues_reveals_once_and_revokes(kgw: Proc, browser) -> None:  # noqa: F811
    from tests.test_dashboard import open_dashboard, rendered

    page, errors, _ = open_dashboard(browser, kgw, ADMIN_KEY)
    rendered(page, "spend")
    page.click('nav#tabs button[data-view="keys"]')
    rendered(page, "keys")
    page.fill("#key-tenant", "web")
    page.fill("#key-id", "web-ui")
    page.fill("#key-models", "mock-gpt")
    page.fill("#key-rpm", "50")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-secret-value")
    secret = page.inner_text("#key-secret-value")
    assert secret.startswith("sk-sy-web-ui.") and chat(kgw, secret).status_code == 200
    row = page.locator("#keys-table tbody tr", has_text="web-ui")
    assert "web" in row.inner_text() and row.locator('[data-state="active"]').count() == 1
    # shown once: a fresh page has no way to see it again
    page2, _, _ = open_dashboard(browser, kgw, ADMIN_KEY)
    rendered(page2, "spend")
    page2.click('nav#tabs button[data-view="keys"]')
    rendered(page2, "keys")
    assert secret not in page2.content() and "web-ui" in page2.inner_text("#keys-table")
    page2.click('#keys-table button.revoke[data-key="web-ui"]')
    page2.wait_for_selector('#keys-table tr:has-text("web-ui") [data-state="revoked"]')
    assert chat(kgw, secret).status_code == 401
    audit = page2.inner_text("#audit-table")
    assert "key.create" in audit and "key.revoke" in audit and secret not in page2.content()
    # a tenant key sees no Keys tab, and the API refuses it
    page3, _, _ = open_dashboard(browser, kgw, KEY_A)
    rendered(page3, "spend")
    assert page3.is_hidden("#tab-keys")
    assert not errors, errors


from tests.test_dashboard import browser  # noqa: E402,F401 - the shared chromium fixture
