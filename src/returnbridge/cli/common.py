"""What every ``returnbridge`` command shares: the --config option, loading the settings
(exit 2 with the problems in plain words), and the consoles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from returnbridge.config import ConfigError, Settings, load_settings

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Configuration file (default: $RB_CONFIG or "
                 "./returnbridge.toml)."),
]


def load(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        err.print(escape(str(exc)), style="red", soft_wrap=True)
        raise typer.Exit(2) from None
