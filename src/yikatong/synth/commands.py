"""Placeholder: replaced by the synthetic-city work (ykt synth, ykt demo)."""

import typer


def register(app: typer.Typer) -> None:
    pass
