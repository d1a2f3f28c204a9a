"""`ykt serve`: run the web application."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option("127.0.0.1", help="Address to listen on"),
        port: int = typer.Option(8000, help="Port to listen on"),
        workers: int = typer.Option(1, help="Worker processes (use more on PostgreSQL)"),
        jobs: bool = typer.Option(False, "--jobs", help="Also run the background jobs (city runs, dry runs, large "
                                                        "imports and exports) in this process, for a single "
                                                        "machine without `ykt worker`"),
    ) -> None:
        """Serve the web pages and the JSON API (/api/v1, docs at /api/docs). Background jobs started on
        the pages are run by `ykt worker` (or by this process with --jobs)."""
        import uvicorn

        if jobs:
            from yikatong.jobs.runner import run_in_background

            run_in_background()

        uvicorn.run("yikatong.web.app:create_app", factory=True, host=host, port=port, workers=workers)
