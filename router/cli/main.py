"""The ``switchyard`` command line."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from router.cli.checks import fixed_price_losses, load_policies, offline_registry, self_hosted_losses
from router.cli.common import load_cfg as _load, refuse
from router.cli.keys import keys_cli
from router.cli.ledger import alerts_cli, export_cli
from router.cli.policies import policies_cli
from router.cli.serve import serve
from router.config import ignored_litellm_settings

cli = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Switchyard: an OpenAI-compatible gateway that routes by price and quality and meters every token.",
)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(export_cli, name="export")
cli.add_typer(alerts_cli, name="alerts")
cli.add_typer(policies_cli, name="policies")
cli.command()(serve)


@cli.command("check-config")
def check_config(config: Path = typer.Argument(..., help="The YAML file to validate.")) -> None:
    """Validate a config file without serving; every problem is reported with its line."""
    cfg = _load(config)
    store, problems = load_policies(cfg)
    count = len(store.loaded)
    for problem in problems:
        typer.echo(f"{config}: policies: {problem}", err=True)
    if problems:
        raise typer.Exit(2)
    for warning in self_hosted_losses(cfg) + fixed_price_losses(cfg, store) + store.predictor_gaps():
        typer.echo(f"{config}: warning: {warning}", err=True)
    ignored = ignored_litellm_settings(cfg)
    if ignored:
        typer.echo(f"{config}: warning: LiteLLM settings not honoured (ignored): {', '.join(ignored)}", err=True)
    typer.echo(
        f"{config}: OK - {len(cfg.model_list)} deployment(s), {len(cfg.aliases)} alias(es), "
        f"{len(cfg.auth.keys)} key(s), {count} policy file(s)"
    )


@cli.command("import-litellm")
def import_litellm(
    config: Path = typer.Argument(..., help="A LiteLLM proxy config file."),
    out: Path = typer.Option(None, help="write here instead of printing"),
) -> None:
    """Print a LiteLLM proxy config as Switchyard's own config, what it does not carry in comments."""
    from router.cli.litellm_import import native_config

    text = native_config(_load(config))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"wrote {out}")


@cli.command()
def price(
    model: str = typer.Argument(..., help="A model name in the price catalog, e.g. gpt-4o."),
    input: int = typer.Option(0, "--input", min=0, help="Prompt tokens (including cached)."),
    output: int = typer.Option(0, "--output", min=0, help="Completion tokens (including reasoning)."),
    cached: int = typer.Option(0, "--cached", min=0, help="Prompt tokens read from the cache."),
    cache_write: int = typer.Option(0, "--cache-write", min=0, help="Prompt tokens written to the cache."),
    reasoning: int = typer.Option(0, "--reasoning", min=0, help="Reasoning tokens (part of --output)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="A gateway config: its price overrides, model_info prices and model names."
    ),
) -> None:
    """Price one request's usage with the catalog (a catalog name, a provider/name as a deployment
    writes it, or with --config one of the config's model names)."""
    from datetime import datetime, timezone

    from pricing import Usage, cost_of
    from pricing.loaders import load_catalog

    p = None
    if config:
        cat, registry = offline_registry(_load(config))
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
    c = cost_of(
        Usage(input, output, cached_tokens=cached, cache_write_tokens=cache_write, reasoning_tokens=reasoning), p
    )
    if as_json:
        typer.echo(
            json.dumps({"model": model, "price_version": p.version, "cost_usd": c.total, "lines": dict(c.lines)})
        )
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
        refuse(f"unknown profile '{profile}'; known: {', '.join(sorted(profiles))}")
    p = profiles[profile]
    e = p.economics()
    classes = [model_class] if model_class else list(p.throughput)
    if model_class and model_class not in p.throughput:
        refuse(f"unknown model class '{model_class}'; known: {', '.join(p.throughput)}")
    per_mtok: dict[str, Any] = {}
    for c in classes:
        tp = p.throughput[c]
        per_mtok[c] = {}
        for kind, tps in (("input", tp.prefill_tokens_per_s), ("output", tp.decode_tokens_per_s)):
            hours = 1e6 / (tps * p.utilisation) / 3600
            per_mtok[c][kind] = {
                "gpu_hours": hours,
                "chips": hours * e.chips,
                "electricity": hours * e.electricity,
                "colocation": hours * e.colocation,
                "iaas_cost": hours * e.all_in,
                "iaas_price": hours * e.rental,
                "iaas_margin": hours * e.iaas_margin,
            }
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "profile": profile,
                    "description": p.description,
                    "per_gpu_hour": e.as_dict(),
                    "utilisation": p.utilisation,
                    "per_mtok": per_mtok,
                },
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"{profile}: USD per GPU-hour ({p.description})")
    t.add_column("item")
    t.add_column("USD/GPU-h", justify="right")
    rows = [
        ("depreciation", e.depreciation),
        ("  of which chips", e.chips),
        ("  of which rest of server", e.other_capex),
        ("electricity", e.electricity),
        ("colocation", e.colocation),
        ("all-in cost", e.all_in),
        ("rental price", e.rental),
        ("IaaS margin", e.iaas_margin),
        ("chip vendor margin", e.chip_vendor_margin),
    ]
    for name, v in rows:
        t.add_row(name, f"{v:.4f}")
    t.add_row("IaaS gross margin", f"{e.iaas_gross_margin:.1%}")
    console.print(t)
    t2 = Table(title=f"USD per 1M tokens at {p.utilisation:.0%} utilisation")
    for col in ("class", "tokens", "GPU-hours", "chips", "power", "colocation", "IaaS cost", "IaaS price"):
        t2.add_column(col, justify="left" if col in ("class", "tokens") else "right")
    for c, kinds in per_mtok.items():
        for kind, v in kinds.items():
            t2.add_row(
                c,
                kind,
                f"{v['gpu_hours']:.4f}",
                f"{v['chips']:.4f}",
                f"{v['electricity']:.4f}",
                f"{v['colocation']:.4f}",
                f"{v['iaas_cost']:.4f}",
                f"{v['iaas_price']:.4f}",
            )
    console.print(t2)


@cli.command()
def demo(
    requests: int = typer.Option(60, min=1, help="Requests in the synthetic workload."),
    port: int = typer.Option(0, help="Port (0: any free port)."),
    url: str = typer.Option(None, help="drive this running gateway (the embedded default's models) instead"),
    key: str = typer.Option(None, envvar="SWITCHYARD_API_KEY", help="its API key (with --url)"),
    key_file: Path = typer.Option(None, help="a file holding the key (make serve writes .switchyard/demo-key)"),
) -> None:
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
            refuse("--url needs --key (or SWITCHYARD_API_KEY, or --key-file)")
        raise typer.Exit(run_demo_against(url, key, requests=requests))
    run_demo(requests=requests, port=port or _free_port())


@cli.command()
def report(
    since: str = typer.Option("24h", help="Start: ISO date/datetime, UNIX seconds, or a duration like 24h or 30d."),
    until: Optional[str] = typer.Option(None, help="End (default: now)."),
    by: str = typer.Option(
        "model", help="Group by: model, alias, tenant, provider, key, user, tag:<key>, or layer (the stack)."
    ),
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
