"""What the CLI's commands share: loading the config they are given (or the embedded default), and
reading data and writing files with a clear error instead of a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import typer

from router.config import Config, ConfigError, embedded_default, load_config


def refuse(message: str) -> NoReturn:
    """The command's clear error: ``message`` on standard error, exit status 2."""
    typer.echo(message, err=True)
    raise typer.Exit(2)


def load_data(path: Path) -> Any:
    """A routing outcome dataset, or a clear error (exit 2) when it cannot be read or is not one."""
    from policies.loaders import load_dataset

    try:
        return load_dataset(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        refuse(f"{path}: cannot read the data: {why}")


def written(out: Path, write: Callable[[Path], object]) -> None:
    """``write(out)``, or a clear error (exit 2) when the file cannot be written."""
    try:
        write(out)
    except OSError as exc:
        refuse(f"{out}: cannot write: {exc.strerror or exc}")


def load_cfg(config: Optional[Path]) -> Config:
    try:
        cfg = load_config(config) if config else embedded_default()
    except ConfigError as exc:
        refuse(exc.render())
    return cfg
