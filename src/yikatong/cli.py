"""The `ykt` command. Each domain adds its own commands; run `ykt --help`."""

from __future__ import annotations

import typer

from yikatong.disbursement import commands as pay_commands
from yikatong.disbursement.bank import commands as bank_commands
from yikatong.imports import commands as import_commands
from yikatong.interception import commands as interception_commands
from yikatong.jobs import commands as jobs_commands
from yikatong.security import commands as security_commands
from yikatong.sharing import commands as sharing_commands
from yikatong.synth import commands as synth_commands
from yikatong.web import commands as web_commands
from yikatong.workflow import commands as workflow_commands
from yikatong.workflow import eye_commands

app = typer.Typer(
    help="一卡通 Yikatong: 惠民惠农财政补贴资金发放监管平台。"
    "Subsidies paid and supervised through the social security card.",
    no_args_is_help=True,
    add_completion=False,
)

db_app = typer.Typer(help="Database schema: create or upgrade it with Alembic migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the tables, or bring an existing database up to the newest schema (YKT_DATABASE_URL)."""
    from yikatong.core.migrate import upgrade

    upgrade()
    typer.echo("数据库已升级到最新版本")


app.add_typer(db_app, name="db")
web_commands.register(app)
security_commands.register(app)
synth_commands.register(app)
import_commands.register(app)
workflow_commands.register(app)
eye_commands.register(app)
sharing_commands.register(app)
interception_commands.register(app)
jobs_commands.register(app)
pay_commands.register(app)
bank_commands.register(app)


def main() -> None:
    """Entry point of `ykt`: a domain error ends the command with its Chinese message, not a traceback."""
    from yikatong.core.errors import DomainError

    try:
        app()
    except DomainError as exc:
        typer.secho(f"错误：{exc.message}", err=True, fg=typer.colors.RED)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
