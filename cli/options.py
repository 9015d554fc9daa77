"""Options every command spells the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="art.toml (default: ./art.toml or $ART_CONFIG)")]
