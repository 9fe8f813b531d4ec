"""``switchyard serve``: the gateway under uvicorn, its defences below the app (router/http.py), its
keys (generated for a local run when none are configured) and a summary of what it serves."""

from __future__ import annotations

import faulthandler
import ipaddress
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from router.cli.common import load_cfg as _load
from router.config import Config, ignored_litellm_settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    config: Optional[Path] = typer.Option(
        None, "--config", "-c", help="YAML config; default: the embedded simulated setup."
    ),
    host: Optional[str] = typer.Option(None, help="Bind address (default: the config's, 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, min=1, max=65535, help="Port (default: the config's, 4000)."),
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
            typer.echo(
                f"Refusing to bind {host}: no virtual keys are configured (auth.keys). "
                "Without keys Switchyard serves loopback only.",
                err=True,
            )
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
    typer.echo(
        f"Switchyard serving on http://{shown}:{port}/v1  ({'config ' + str(config) if config else 'embedded default: simulated providers, no keys needed'})"
    )
    for line in notes:
        typer.echo(line)
    typer.echo(f"  Models: {', '.join(_names(cfg))}")
    typer.echo(
        "  Routes: POST /v1/chat/completions, /v1/responses, /v1/messages (Anthropic; also count_tokens), "
        "/v1/completions, /v1/embeddings; GET /v1/models, /v1/responses/{id}; dashboard at /dashboard"
    )
    sys.stdout.flush()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (in-flight requests finish, the lifespan
    # flushes the ledger), then re-raises the signal to the handler that was installed before it.
    # A no-op handler here turns that graceful stop into exit status 0, as orchestrators expect.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # `kill -USR1 <pid>` writes every thread's stack to stderr (the log), the process running on: what
    # an operator (or the tests, before they kill a gateway that does not stop) needs to see a hang
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)
    _raise_file_limit()
    from router.http import (
        ENV_BODY_TIMEOUT,
        ENV_HEADER_TIMEOUT,
        ENV_MAX_HEADER_BYTES,
        ENV_MAX_HEADERS,
        ENV_MAX_INCOMPLETE,
        HeadGuard,
    )

    os.environ[ENV_BODY_TIMEOUT] = str(cfg.server.body_timeout)
    os.environ[ENV_MAX_HEADER_BYTES] = str(cfg.server.max_header_bytes)
    os.environ[ENV_MAX_HEADERS] = str(cfg.server.max_headers)
    os.environ[ENV_HEADER_TIMEOUT] = str(cfg.server.header_timeout)
    os.environ[ENV_MAX_INCOMPLETE] = str(cfg.server.max_incomplete_requests)

    uvicorn.run(
        "router.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=HeadGuard,
        access_log=access_log,
        log_level=log_level,
        # uvicorn's hints say int; it takes seconds as float
        timeout_graceful_shutdown=cfg.server.graceful_shutdown,  # type: ignore[arg-type]
        timeout_keep_alive=cfg.server.keepalive_timeout,  # type: ignore[arg-type]
        backlog=4096,
        server_header=False,
        # client addresses are resolved by the app, through server.trusted_proxies only
        # (uvicorn would believe X-Forwarded-For from any loopback peer)
        proxy_headers=False,
    )


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
