"""`ykt serve`: run the web application."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on"),
        port: int = typer.Option(8000, help="Port to listen on"),
        workers: int = typer.Option(1, help="Worker processes (use more on PostgreSQL)"),
    ) -> None:
        """Serve the web pages and the JSON API (/api/v1, docs at /api/docs)."""
        import uvicorn

        uvicorn.run("yikatong.web.app:create_app", factory=True, host=host, port=port, workers=workers)
