"""What the CLI's commands share: loading the config they are given (or the embedded default)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from router.config import Config, ConfigError, embedded_default, load_config


def load_cfg(config: Optional[Path]) -> Config:
    try:
        cfg = load_config(config) if config else embedded_default()
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2)
    return cfg
