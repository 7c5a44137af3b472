"""Options several commands take, declared once (typer's `Annotated` style)."""

from __future__ import annotations

from typing import Annotated

import typer

ModelDir = Annotated[str | None, typer.Option("--model", help="model directory (default models/default)")]
RulesFile = Annotated[str | None, typer.Option("--rules", help="rules YAML (default config/rules.yaml)")]
ConfigFile = Annotated[str | None, typer.Option("--config", help="pipeline settings YAML")]
NoModel = Annotated[bool, typer.Option("--no-model", help="rules only")]
JsonOut = Annotated[str | None, typer.Option("--json", help="also write the results as JSON here")]
