"""``switchyard keys``: virtual keys, issued in a running gateway's database through its admin API."""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from router.cli.common import refuse

keys_cli = typer.Typer(no_args_is_help=True, help="Virtual keys.")


def _admin_call(url: str, admin_key: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to a running gateway's admin API (stdlib HTTP: the CLI needs no client library)."""
    import urllib.error
    import urllib.request

    if not admin_key:
        refuse("--admin-key (or SWITCHYARD_ADMIN_KEY) is needed with --url")
    req = urllib.request.Request(
        url.rstrip("/") + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"authorization": f"Bearer {admin_key}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except Exception:  # noqa: BLE001 - not our error shape: show the status alone
            message = exc.reason
        typer.echo(f"{exc.code}: {message}", err=True)
        raise typer.Exit(1) from None
    except urllib.error.URLError as exc:
        typer.echo(f"cannot reach {url}: {exc.reason}", err=True)
        raise typer.Exit(1) from None


URL_HELP = "a running gateway (e.g. http://127.0.0.1:4000): issue the key there, in its database"
ADMIN_HELP = "the gateway's admin key (default: $SWITCHYARD_ADMIN_KEY)"


@keys_cli.command("create")
def keys_create(
    key_id: str = typer.Argument(None, help="Key id: a-z, 0-9 and '-' (with --url: optional)."),
    tenant: str = typer.Option(..., help="Tenant the key bills to."),
    url: str = typer.Option(None, help=URL_HELP),
    admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP),
    models: str = typer.Option(None, help="comma-separated model allow-list"),
    rpm: int = typer.Option(None, min=0),
    tpm: int = typer.Option(None, min=0),
    budget_usd: float = typer.Option(None, min=0),
    budget_period: str = typer.Option("month"),
    expires_in_days: float = typer.Option(None, min=0),
    tenant_admin: bool = typer.Option(
        False, "--tenant-admin", help="the key may manage its own tenant's keys (with --url)"
    ),
) -> None:
    """Make a new key and print it once. With --url the gateway issues it (every replica knows it
    within seconds); without, this prints the config entry holding only its hash."""
    from router.auth import hash_key, new_key
    from router.config_sections import KEY_ID

    if key_id is not None and not KEY_ID.match(key_id):
        refuse("key id must be 1-40 characters of a-z, 0-9 and '-'")
    if url:
        body: dict[str, Any] = {"tenant": tenant, **({"id": key_id} if key_id else {})}
        if models:
            body["models"] = [m.strip() for m in models.split(",") if m.strip()]
        body.update({k: v for k, v in (("rpm", rpm), ("tpm", tpm)) if v is not None})
        if budget_usd is not None:
            body["budget"] = {"usd": budget_usd, "period": budget_period}
        if expires_in_days is not None:
            body["expires_at"] = time.time() + expires_in_days * 86400
        if tenant_admin:
            body["tenant_admin"] = True
        made = _admin_call(url, admin_key, "POST", "/admin/keys", body)
        typer.echo(f"key {made['id']} (tenant {made['tenant']}), shown once: {made['key']}")
        return
    if key_id is None:
        refuse("a key id is needed without --url")
    key = new_key(key_id)
    typer.echo(f"key (shown once): {key}")
    typer.echo("config entry for auth.keys:")
    typer.echo(f"  - {{id: {key_id}, tenant: {tenant}, hash: '{hash_key(key)}'}}")


@keys_cli.command("list")
def keys_list(
    url: str = typer.Option(..., help="a running gateway"),
    admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP),
    tenant: str = typer.Option(None, help="only this tenant's keys"),
) -> None:
    """The gateway's keys (issued over HTTP and from its config file); never a secret."""
    rows = _admin_call(url, admin_key, "GET", "/admin/keys" + (f"?tenant={tenant}" if tenant else ""))["data"]
    for k in rows:
        state = "revoked" if k.get("revoked") else "active"
        typer.echo(f"{k['id']:<40} {k['tenant']:<20} {k['source']:<7} {state}")


@keys_cli.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(...),
    url: str = typer.Option(..., help="a running gateway"),
    admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP),
) -> None:
    """Revoke a key issued over HTTP: refused on every replica within seconds."""
    _admin_call(url, admin_key, "POST", f"/admin/keys/{key_id}/revoke")
    typer.echo(f"key {key_id} revoked")


@keys_cli.command("rotate")
def keys_rotate(
    key_id: str = typer.Argument(...),
    url: str = typer.Option(..., help="a running gateway"),
    admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP),
    grace_seconds: float = typer.Option(3600, min=0, help="how long the old secret keeps working"),
) -> None:
    """A new secret for a key (printed once); the old one works for the grace period."""
    made = _admin_call(url, admin_key, "POST", f"/admin/keys/{key_id}/rotate", {"grace_seconds": grace_seconds})
    typer.echo(f"key {key_id}, new secret shown once: {made['key']} (the old one works for {grace_seconds:g} s)")
