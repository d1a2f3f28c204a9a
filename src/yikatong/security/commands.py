"""`ykt user ...`: manage accounts from the command line (first administrator, scripted setup)."""

from __future__ import annotations

import typer

from yikatong.core.clock import system_clock
from yikatong.core.db import transaction
from yikatong.security.roles import ROLE_LABELS, Role

ROLE_HELP = "Role: " + ", ".join(f"{r.value}={ROLE_LABELS[r]}" for r in Role)


def register(app: typer.Typer) -> None:
    user_app = typer.Typer(help="User accounts: create users with a role and a region.", no_args_is_help=True)

    @user_app.command("create")
    def create(
        username: str = typer.Argument(..., help="Login name"),
        role: Role = typer.Option(..., help=ROLE_HELP),
        region: str = typer.Option(..., help="12-digit region code; the user sees this region and below"),
        name: str = typer.Option("", help="Display name (Chinese), defaults to the username"),
        department: str | None = typer.Option(None, help="Department code (county handlers)"),
        bank: str | None = typer.Option(None, help="Bank code (bank users)"),
        password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True,
                                     help="At least 8 characters; asked for when not given"),
    ) -> None:
        """Create one user account."""
        from yikatong.security.service import create_user

        with transaction() as session:
            user = create_user(session, username, password, role, region, name or username,
                               system_clock.now(), department_code=department, bank_code=bank)
            typer.echo(f"已创建用户 {user.username}（{ROLE_LABELS[role]}，区划 {user.region_code}）")

    app.add_typer(user_app, name="user")
