"""The ``switchyard`` command line."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from router.cli.policies import policies_cli
from router.config import Config, ConfigError, embedded_default, ignored_litellm_settings, load_config

cli = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Switchyard: an OpenAI-compatible gateway that routes by price and quality and meters every token.")
keys_cli = typer.Typer(no_args_is_help=True, help="Virtual keys.")
cli.add_typer(keys_cli, name="keys")
export_cli = typer.Typer(no_args_is_help=True, help="Exports of the ledger.")
cli.add_typer(export_cli, name="export")
alerts_cli = typer.Typer(no_args_is_help=True, help="Budget alerts (router/accounting/alerts.py).")
cli.add_typer(alerts_cli, name="alerts")
cli.add_typer(policies_cli, name="policies")


def _load(config: Optional[Path]) -> Config:
    try:
        cfg = load_config(config) if config else embedded_default()
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2)
    return cfg


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command()
def serve(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config; default: the embedded simulated setup."),
    host: Optional[str] = typer.Option(None, help="Bind address (default: the config's, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (default: the config's, 4000)."),
    workers: int = typer.Option(1, min=1, help="Worker processes; share state through Redis when more than one."),
    access_log: bool = typer.Option(False, help="Log every request line."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve the OpenAI-compatible API."""
    import uvicorn

    from router.app import ENV_ADMIN_KEY_HASH, ENV_CONFIG, ENV_DEMO_KEY_HASH
    from router.auth import hash_key, new_key

    cfg = _load(config)
    host = host or cfg.server.host
    port = port or cfg.server.port
    if config:
        os.environ[ENV_CONFIG] = str(config.resolve())
    else:
        os.environ.pop(ENV_CONFIG, None)
    notes = []
    ignored = ignored_litellm_settings(cfg)
    if ignored:
        notes.append(f"  Note: LiteLLM settings not honoured (ignored): {', '.join(ignored)}")
    if not cfg.auth.keys and not cfg.master_key:
        if not _is_loopback(host):
            typer.echo(f"Refusing to bind {host}: no virtual keys are configured (auth.keys). "
                       "Without keys Switchyard serves loopback only.", err=True)
            raise typer.Exit(2)
        demo = new_key("demo")
        os.environ[ENV_DEMO_KEY_HASH] = hash_key(demo)
        notes.append(f"  API key (demo tenant, this run only): {demo}")
        _keep_demo_key(Path(cfg.storage.data_dir), demo)
    if not cfg.auth.admin_key and not cfg.master_key:
        admin = new_key("admin")
        os.environ[ENV_ADMIN_KEY_HASH] = hash_key(admin)
        notes.append(f"  Admin key (this run only):           {admin}")
    if workers > 1:
        # Each worker counts into files here; /metrics on any worker aggregates them all.
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="switchyard-metrics-")
        if not cfg.storage.redis_url:
            notes.append("  Note: several workers without storage.redis_url keep rate limits and budgets per worker.")
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"Switchyard serving on http://{shown}:{port}/v1  ({'config ' + str(config) if config else 'embedded default: simulated providers, no keys needed'})")
    for line in notes:
        typer.echo(line)
    typer.echo(f"  Models: {', '.join(_names(cfg))}")
    typer.echo("  Routes: POST /v1/chat/completions, /v1/responses, /v1/messages (Anthropic; also count_tokens), "
               "/v1/completions, /v1/embeddings; GET /v1/models, /v1/responses/{id}; dashboard at /dashboard")
    sys.stdout.flush()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (in-flight requests finish, the lifespan
    # flushes the ledger), then re-raises the signal to the handler that was installed before it.
    # A no-op handler here turns that graceful stop into exit status 0, as orchestrators expect.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    _raise_file_limit()
    from router.http import (ENV_BODY_TIMEOUT, ENV_HEADER_TIMEOUT, ENV_MAX_HEADER_BYTES, ENV_MAX_HEADERS,
                             ENV_MAX_INCOMPLETE, SwitchyardHttp)

    os.environ[ENV_BODY_TIMEOUT] = str(cfg.server.body_timeout)
    os.environ[ENV_MAX_HEADER_BYTES] = str(cfg.server.max_header_bytes)
    os.environ[ENV_MAX_HEADERS] = str(cfg.server.max_headers)
    os.environ[ENV_HEADER_TIMEOUT] = str(cfg.server.header_timeout)
    os.environ[ENV_MAX_INCOMPLETE] = str(cfg.server.max_incomplete_requests)

    uvicorn.run("router.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                loop="uvloop", http=SwitchyardHttp, access_log=access_log, log_level=log_level,
                # uvicorn's hints say int; it takes seconds as float
                timeout_graceful_shutdown=cfg.server.graceful_shutdown,  # type: ignore[arg-type]
                timeout_keep_alive=cfg.server.keepalive_timeout,  # type: ignore[arg-type]
                backlog=4096, server_header=False,
                # client addresses are resolved by the app, through server.trusted_proxies only
                # (uvicorn would believe X-Forwarded-For from any loopback peer)
                proxy_headers=False)


def _keep_demo_key(data_dir: Path, key: str) -> None:
    """This run's demo key, readable by its owner only, for ``switchyard demo --key-file`` (make demo)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "demo-key"
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
    except OSError:  # a read-only directory: the banner still shows the key
        pass


def _raise_file_limit() -> None:
    """A gateway holds a socket per client and per upstream: lift the soft descriptor limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _names(cfg: Config) -> list[str]:
    """Deployments, aliases and the aliases policies bind (the banner's list of what clients may send)."""
    from policies.schema import PolicyError, parse_policy
    from router.policy_store import policy_sources

    bound: list[str] = []
    try:
        for source, text, _ in policy_sources(cfg.policies):
            bound += [a for a in parse_policy(text, source).bind.aliases if a != "*"]
    except PolicyError:
        pass  # the server reports invalid policy files itself when it loads them
    return list(dict.fromkeys([d.model_name for d in cfg.model_list] + list(cfg.aliases) + bound))


@cli.command("check-config")
def check_config(config: Path = typer.Argument(..., help="The YAML file to validate.")) -> None:
    """Validate a config file without serving; every problem is reported with its line."""
    cfg = _load(config)
    store, problems = _load_policies(cfg)
    count = len(store.loaded)
    for problem in problems:
        typer.echo(f"{config}: policies: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    for warning in _self_hosted_losses(cfg) + _fixed_price_losses(cfg, store):
        typer.echo(f"{config}: warning: {warning}", err=True)
    ignored = ignored_litellm_settings(cfg)
    if ignored:
        typer.echo(f"{config}: warning: LiteLLM settings not honoured (ignored): {', '.join(ignored)}", err=True)
    typer.echo(f"{config}: OK - {len(cfg.model_list)} deployment(s), {len(cfg.aliases)} alias(es), "
               f"{len(cfg.auth.keys)} key(s), {count} policy file(s)")


@cli.command("import-litellm")
def import_litellm(config: Path = typer.Argument(..., help="A LiteLLM proxy config file."),
                   out: Path = typer.Option(None, help="write here instead of printing")) -> None:
    """Print a LiteLLM proxy config as Switchyard's own config, what it does not carry in comments."""
    from router.cli.litellm_import import native_config

    text = native_config(_load(config))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}")


def _self_hosted_losses(cfg: Config) -> list[str]:
    """Self-hosted models a plan charges less for than their GPU-hours cost at the stack profile's
    throughput: every such request loses money (the Stack view shows it as a negative margin)."""
    from pricing import Usage
    from pricing.loaders import load_profiles
    from pricing.attribution import self_hosted_cost

    catalog, registry = _offline_registry(cfg)
    profile = load_profiles()[cfg.billing.profile]
    out = []
    for dep in registry.deployments:
        if not dep.self_hosted or dep.mode != "chat":
            continue
        price = dep.price(catalog)
        cls = dep.model_class or profile.model_class(dep.price_key or dep.upstream_model,
                                                     price.output * 1e6 if price is not None else None)
        for kind, usage in (("input", Usage(1_000_000, 0)), ("output", Usage(0, 1_000_000))):
            cost = self_hosted_cost(usage, profile, cls)
            api = None
            if price is not None:
                api = (price.input if kind == "input" else price.output) * 1e6
            for name, plan in cfg.billing.plans.items():
                charge = plan.charge(dep.model_name, usage, api)
                if charge is not None and charge < cost:
                    out.append(f"model '{dep.model_name}' is self-hosted ({cls} class): plan '{name}' charges "
                               f"${charge:.4f} per million {kind} tokens, below their GPU cost of ${cost:.4f} at "
                               f"profile '{profile.name}' throughput; such requests lose money")
    return out


def _offline_registry(cfg: Config) -> tuple[Any, Any]:
    """The config's price catalog and its deployments as the server would build them, reading no
    secret: every os.environ/ reference (parse_config already checked each is set) stands for a
    placeholder URL, so deployments whose api_base is such a reference build as they will."""
    from router.registry import Registry
    from router.services import load_catalog
    from router.tokens import Tokenizer

    catalog = load_catalog(cfg)
    return catalog, Registry.build(cfg, catalog, Tokenizer(), lambda ref: "https://env-reference.invalid/v1"
                                   if ref else None)


def _fixed_price_losses(cfg: Config, store: Any) -> list[str]:
    """Aliases a plan sells at a fixed price that can route to a model whose list price per token
    is above it: every request that model answers costs more than it earns (for the tokens whose
    rate is above; both rates above: whatever the request)."""
    catalog, registry = _offline_registry(cfg)
    reach: dict[str, list[str]] = {alias: list(models) for alias, models in cfg.aliases.items()}
    for x in store.loaded:
        for alias in x.policy.bind.aliases:
            if alias != "*":
                reach.setdefault(alias, [])
                reach[alias] += [m for m in x.policy.models if m not in reach[alias]]
    out = []
    for plan_name, plan in cfg.billing.plans.items():
        for alias, fixed in plan.fixed.items():
            for model in reach.get(alias, []):
                deps = [d for d in registry.candidates(model, "chat") if not d.self_hosted]
                price = deps[0].price(catalog) if deps else None
                if price is None:
                    continue
                above = [f"{kind} ${have * 1e6:g} > ${sold:g}" for kind, have, sold in (
                    ("input", price.input, fixed.input_per_mtok), ("output", price.output, fixed.output_per_mtok))
                    if have * 1e6 > sold]
                if above:
                    out.append(f"plan '{plan_name}' sells '{alias}' at a fixed ${fixed.input_per_mtok:g} / "
                               f"${fixed.output_per_mtok:g} per million input / output tokens, and '{alias}' can "
                               f"route to '{model}', which costs more per million tokens ({', '.join(above)}): "
                               f"requests it answers lose money (a policy with a margin objective weighs this price when it routes)")
    return out


def _load_policies(cfg: Config) -> tuple[Any, list[str]]:
    """Load the config's policy files as the server would at start-up (schema, predictor and verifier
    files, candidates that are no model or alias of the config): the store, and what it would refuse."""
    from router.policy_store import PolicyStore

    logging.getLogger("switchyard.policies").setLevel(logging.ERROR)  # the problems are printed instead
    _, registry = _offline_registry(cfg)
    store = PolicyStore(cfg.policies, registry)
    ok, problems = store.reload()
    return store, ([] if ok else problems)


@cli.command()
def price(
    model: str = typer.Argument(..., help="A model name in the price catalog, e.g. gpt-4o."),
    input: int = typer.Option(0, "--input", min=0, help="Prompt tokens (including cached)."),
    output: int = typer.Option(0, "--output", min=0, help="Completion tokens (including reasoning)."),
    cached: int = typer.Option(0, "--cached", min=0, help="Prompt tokens read from the cache."),
    cache_write: int = typer.Option(0, "--cache-write", min=0, help="Prompt tokens written to the cache."),
    reasoning: int = typer.Option(0, "--reasoning", min=0, help="Reasoning tokens (part of --output)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="A gateway config: its price overrides, model_info prices and model names."),
) -> None:
    """Price one request's usage with the catalog (a catalog name, a provider/name as a deployment
    writes it, or with --config one of the config's model names)."""
    from datetime import datetime, timezone

    from pricing import Usage, cost_of
    from pricing.loaders import load_catalog

    p = None
    if config:
        cat, registry = _offline_registry(_load(config))
        deps = registry.candidates(model, "chat") or registry.candidates(model, "embedding")
        p = deps[0].price(cat) if deps else None
    else:
        cat = load_catalog()
    if p is None:
        key = cat.key_for(model)
        p = cat.price(key, datetime.now(timezone.utc)) if key else None
    if p is None:
        typer.echo(f"{model}: unpriced (not in the catalog)", err=True)
        raise typer.Exit(1)
    c = cost_of(Usage(input, output, cached_tokens=cached, cache_write_tokens=cache_write, reasoning_tokens=reasoning), p)
    if as_json:
        typer.echo(json.dumps({"model": model, "price_version": p.version, "cost_usd": c.total, "lines": dict(c.lines)}))
        return
    typer.echo(f"{model}  (price {p.version})")
    for name, usd in c.lines.items():
        if usd:
            typer.echo(f"  {name:<13} ${usd:.8f}")
    typer.echo(f"  {'total':<13} ${c.total:.8f}")


@cli.command()
def economics(
    profile: str = typer.Option("h200", "--profile", help="A stack profile name from pricing/data/profiles.yaml."),
    model_class: Optional[str] = typer.Option(None, "--model-class", help="Only this model class."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Per-GPU-hour economics of a stack profile, and the cost of 1M tokens at each layer."""
    from pricing.loaders import load_profiles

    profiles = load_profiles()
    if profile not in profiles:
        typer.echo(f"unknown profile '{profile}'; known: {', '.join(sorted(profiles))}", err=True)
        raise typer.Exit(2)
    p = profiles[profile]
    e = p.economics()
    classes = [model_class] if model_class else list(p.throughput)
    if model_class and model_class not in p.throughput:
        typer.echo(f"unknown model class '{model_class}'; known: {', '.join(p.throughput)}", err=True)
        raise typer.Exit(2)
    per_mtok: dict[str, Any] = {}
    for c in classes:
        tp = p.throughput[c]
        per_mtok[c] = {}
        for kind, tps in (("input", tp.prefill_tokens_per_s), ("output", tp.decode_tokens_per_s)):
            hours = 1e6 / (tps * p.utilisation) / 3600
            per_mtok[c][kind] = {"gpu_hours": hours, "chips": hours * e.chips, "electricity": hours * e.electricity,
                                 "colocation": hours * e.colocation, "iaas_cost": hours * e.all_in,
                                 "iaas_price": hours * e.rental, "iaas_margin": hours * e.iaas_margin}
    if as_json:
        typer.echo(json.dumps({"profile": profile, "description": p.description, "per_gpu_hour": e.as_dict(),
                               "utilisation": p.utilisation, "per_mtok": per_mtok}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"{profile}: USD per GPU-hour ({p.description})")
    t.add_column("item")
    t.add_column("USD/GPU-h", justify="right")
    rows = [("depreciation", e.depreciation), ("  of which chips", e.chips), ("  of which rest of server", e.other_capex),
            ("electricity", e.electricity), ("colocation", e.colocation), ("all-in cost", e.all_in),
            ("rental price", e.rental), ("IaaS margin", e.iaas_margin), ("chip vendor margin", e.chip_vendor_margin)]
    for name, v in rows:
        t.add_row(name, f"{v:.4f}")
    t.add_row("IaaS gross margin", f"{e.iaas_gross_margin:.1%}")
    console.print(t)
    t2 = Table(title=f"USD per 1M tokens at {p.utilisation:.0%} utilisation")
    for col in ("class", "tokens", "GPU-hours", "chips", "power", "colocation", "IaaS cost", "IaaS price"):
        t2.add_column(col, justify="left" if col in ("class", "tokens") else "right")
    for c, kinds in per_mtok.items():
        for kind, v in kinds.items():
            t2.add_row(c, kind, f"{v['gpu_hours']:.4f}", f"{v['chips']:.4f}", f"{v['electricity']:.4f}",
                       f"{v['colocation']:.4f}", f"{v['iaas_cost']:.4f}", f"{v['iaas_price']:.4f}")
    console.print(t2)


def _admin_call(url: str, admin_key: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to a running gateway's admin API (stdlib HTTP: the CLI needs no client library)."""
    import urllib.error
    import urllib.request

    if not admin_key:
        typer.echo("--admin-key (or SWITCHYARD_ADMIN_KEY) is needed with --url", err=True)
        raise typer.Exit(2)
    req = urllib.request.Request(url.rstrip("/") + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"authorization": f"Bearer {admin_key}", "content-type": "application/json"})
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
def keys_create(key_id: str = typer.Argument(None, help="Key id: a-z, 0-9 and '-' (with --url: optional)."),
                tenant: str = typer.Option(..., help="Tenant the key bills to."),
                url: str = typer.Option(None, help=URL_HELP),
                admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP),
                models: str = typer.Option(None, help="comma-separated model allow-list"),
                rpm: int = typer.Option(None, min=0), tpm: int = typer.Option(None, min=0),
                budget_usd: float = typer.Option(None, min=0), budget_period: str = typer.Option("month"),
                expires_in_days: float = typer.Option(None, min=0),
                tenant_admin: bool = typer.Option(False, "--tenant-admin",
                                                  help="the key may manage its own tenant's keys (with --url)")) -> None:
    """Make a new key and print it once. With --url the gateway issues it (every replica knows it
    within seconds); without, this prints the config entry holding only its hash."""
    from router.auth import hash_key, new_key
    from router.config import KEY_ID

    if key_id is not None and not KEY_ID.match(key_id):
        typer.echo("key id must be 1-40 characters of a-z, 0-9 and '-'", err=True)
        raise typer.Exit(2)
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
        typer.echo("a key id is needed without --url", err=True)
        raise typer.Exit(2)
    key = new_key(key_id)
    typer.echo(f"key (shown once): {key}")
    typer.echo("config entry for auth.keys:")
    typer.echo(f"  - {{id: {key_id}, tenant: {tenant}, hash: '{hash_key(key)}'}}")


@keys_cli.command("list")
def keys_list(url: str = typer.Option(..., help="a running gateway"),
              admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP),
              tenant: str = typer.Option(None, help="only this tenant's keys")) -> None:
    """The gateway's keys (issued over HTTP and from its config file); never a secret."""
    rows = _admin_call(url, admin_key, "GET", "/admin/keys" + (f"?tenant={tenant}" if tenant else ""))["data"]
    for k in rows:
        state = "revoked" if k.get("revoked") else "active"
        typer.echo(f"{k['id']:<40} {k['tenant']:<20} {k['source']:<7} {state}")


@keys_cli.command("revoke")
def keys_revoke(key_id: str = typer.Argument(...), url: str = typer.Option(..., help="a running gateway"),
                admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP)) -> None:
    """Revoke a key issued over HTTP: refused on every replica within seconds."""
    _admin_call(url, admin_key, "POST", f"/admin/keys/{key_id}/revoke")
    typer.echo(f"key {key_id} revoked")


@keys_cli.command("rotate")
def keys_rotate(key_id: str = typer.Argument(...), url: str = typer.Option(..., help="a running gateway"),
                admin_key: str = typer.Option(None, envvar="SWITCHYARD_ADMIN_KEY", help=ADMIN_HELP),
                grace_seconds: float = typer.Option(3600, min=0, help="how long the old secret keeps working")) -> None:
    """A new secret for a key (printed once); the old one works for the grace period."""
    made = _admin_call(url, admin_key, "POST", f"/admin/keys/{key_id}/rotate", {"grace_seconds": grace_seconds})
    typer.echo(f"key {key_id}, new secret shown once: {made['key']} (the old one works for {grace_seconds:g} s)")


@cli.command()
def demo(requests: int = typer.Option(60, min=1, help="Requests in the synthetic workload."),
         port: int = typer.Option(0, help="Port (0: any free port)."),
         url: str = typer.Option(None, help="drive this running gateway (the embedded default's models) instead"),
         key: str = typer.Option(None, envvar="SWITCHYARD_API_KEY", help="its API key (with --url)"),
         key_file: Path = typer.Option(None, help="a file holding the key (make serve writes .switchyard/demo-key)")) -> None:
    """Drive a mixed workload through the embedded default (served here) or a running gateway
    (--url): where the requests went and what they cost."""
    from router.cli.demo import run_demo, run_demo_against

    if url:
        if key is None and key_file is not None:
            try:
                key = key_file.read_text().strip()
            except OSError as exc:
                typer.echo(f"cannot read {key_file}: {exc.strerror}", err=True)
                raise typer.Exit(2) from None
        if not key:
            typer.echo("--url needs --key (or SWITCHYARD_API_KEY, or --key-file)", err=True)
            raise typer.Exit(2)
        raise typer.Exit(run_demo_against(url, key, requests=requests))
    run_demo(requests=requests, port=port or _free_port())


@cli.command()
def report(
    since: str = typer.Option("24h", help="Start: ISO date/datetime, UNIX seconds, or a duration like 24h or 30d."),
    until: Optional[str] = typer.Option(None, help="End (default: now)."),
    by: str = typer.Option("model", help="Group by: model, alias, tenant, provider, key, user, tag:<key>, or layer (the stack)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    url: str = typer.Option("http://127.0.0.1:4000", envvar="SWITCHYARD_URL", help="The gateway."),
    key: str = typer.Option(..., envvar="SWITCHYARD_API_KEY", help="A tenant key (its tenant) or the admin key (all)."),
) -> None:
    """Spend, tokens and margin from a gateway's usage API, as a table or JSON."""
    from router.analytics.report import BY, fetch, render

    if by not in BY and not (by.startswith("tag:") and len(by) > 4):
        raise typer.BadParameter(f"one of {', '.join(BY)}, or tag:<key>", param_hint="--by")
    _fetch_and_print(lambda: fetch(url, key, since, until, by), render, url, as_json, 160)


def _fetch_and_print(get: Any, render: Any, url: str, as_json: bool, width: int) -> None:
    """Read a gateway's answer and print it as JSON or as tables; a clear error line, never a traceback."""
    from rich.console import Console

    import httpx

    from router.errors import APIError
    from router.analytics.report import ReportError

    try:
        data = get()
    except (ReportError, APIError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(1) from None
    except (OSError, httpx.HTTPError) as exc:
        typer.echo(f"error: cannot reach {url}: {exc or type(exc).__name__}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(data, indent=1))
    else:
        render(data, Console() if sys.stdout.isatty() else Console(width=width))


@cli.command()
def advise(
    since: str = typer.Option("30d", help="Start of the traffic to judge by: ISO date, UNIX seconds or a duration."),
    until: Optional[str] = typer.Option(None, help="End (default: now)."),
    profile: Optional[str] = typer.Option(None, help="Stack profile (default: the config's billing.profile)."),
    utilisation: Optional[float] = typer.Option(None, help="Utilisation at the busiest hour (default: the profile's)."),
    rental: Optional[float] = typer.Option(None, help="GPU rent, USD per GPU-hour (default: the profile's)."),
    decline: float = typer.Option(0.1, help="API price after one year, as a factor (0.1: ten times cheaper)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON the dashboard's Build or buy view reads."),
    url: str = typer.Option("http://127.0.0.1:4000", envvar="SWITCHYARD_URL", help="The gateway."),
    key: str = typer.Option(..., envvar="SWITCHYARD_ADMIN_KEY", help="The admin key."),
) -> None:
    """Build or buy: each model's traffic served by its API, on rented GPUs or on owned ones."""
    from router.analytics.report import fetch_advice, render_advice

    params = {"profile": profile, "utilisation": utilisation, "rental": rental, "decline": decline}
    _fetch_and_print(lambda: fetch_advice(url, key, since, until, params), render_advice, url, as_json, 200)


def _ledger_range(since: str, until: Optional[str], config: Optional[Path]) -> tuple[Any, float, float]:
    """The ledger a config names (SQLite in its data dir, or its database_url) and a time range."""
    import time as _time

    from router.config import resolve_env
    from router.ledger.store import LedgerStore, sqlite_url
    from router.analytics.usage_api import parse_time

    cfg = _load(config)
    try:
        start = parse_time(since, 0.0, "since")
        end = parse_time(until, _time.time() + 1, "until")
    except Exception as exc:
        typer.echo(str(getattr(exc, "message", exc)), err=True)
        raise typer.Exit(2)
    return LedgerStore(resolve_env(cfg.storage.database_url, literal_ok=True) or sqlite_url(cfg.storage.data_dir)), start, end


def _with_ledger(store: Any, work: Any) -> Any:
    import asyncio

    async def run() -> Any:
        try:
            await store.migrate()
            return await work(store)
        finally:
            await store.dispose()
    return asyncio.run(run())


@alerts_cli.command("test")
def alerts_test_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The gateway's config (its alerts.webhooks)."),
) -> None:
    """Send a sample budget alert to every configured webhook, signed and retried as a real one."""
    import asyncio

    from router.accounting.alerts import Alerter
    from router.config import resolve_env
    from router.metrics import Metrics
    from router.accounting.state import MemoryState

    cfg = _load(config)
    if not cfg.alerts.webhooks:
        typer.echo("no alerts.webhooks in this config: nothing to send", err=True)
        raise typer.Exit(2)
    alerter = Alerter(cfg.alerts, MemoryState(), None, Metrics(), lambda ref: resolve_env(ref))
    status = asyncio.run(alerter.test())
    typer.echo(f"sample alert to {len(cfg.alerts.webhooks)} webhook(s): {status}")
    raise typer.Exit(0 if status == "sent" else 1)


@export_cli.command("focus")
def export_focus_cmd(
    since: str = typer.Option("24h", help="Start: ISO date/datetime, UNIX seconds, or a duration like 24h or 30d."),
    until: Optional[str] = typer.Option(None, help="End (default: now)."),
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The gateway's config (for its ledger)."),
) -> None:
    """Write the ledger as FinOps FOCUS 1.2 rows (with 1.3 provider columns) to a CSV file."""
    from router.analytics.focus import export_focus

    store, start, end = _ledger_range(since, until, config)
    totals = _with_ledger(store, lambda s: export_focus(s.lines(start, end), out))
    typer.echo(f"wrote {int(totals['rows'])} FOCUS rows to {out}; BilledCost total ${totals['billed']:.6f}")


@export_cli.command("requests")
def export_requests_cmd(
    since: str = typer.Option("24h", help="Start: ISO date/datetime, UNIX seconds, or a duration like 24h or 30d."),
    until: Optional[str] = typer.Option(None, help="End (default: now)."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (one record per line), csv, or parquet (needs pyarrow: switchyard[parquet])."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The gateway's config (for its ledger)."),
) -> None:
    """Write the spend log: every ledger record of the range with its cost lines (no prompt content)."""
    from router.analytics.spendlog import FORMATS, export_requests

    if fmt not in FORMATS:
        raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    store, start, end = _ledger_range(since, until, config)
    t = _with_ledger(store, lambda s: export_requests(s, start, end, out, fmt))
    unpriced = f", {int(t['unpriced'])} unpriced (not in the cost)" if t["unpriced"] else ""
    typer.echo(f"wrote {int(t['records'])} records to {out}; charge ${t['charge_usd']:.6f}, "
               f"cost ${t['cost_usd']:.6f}{unpriced}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
