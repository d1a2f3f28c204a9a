"""Placeholder: replaced by the import work (ykt import)."""

import typer


def register(app: typer.Typer) -> None:
    pass
