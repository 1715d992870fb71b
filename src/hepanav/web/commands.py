"""``hepanav serve`` and ``hepanav web create-user``."""

from __future__ import annotations

from pathlib import Path

import typer

web_app = typer.Typer(
    help="Web application administration (users).", no_args_is_help=True, add_completion=False
)


def register(app: typer.Typer) -> None:
    """Add ``hepanav serve`` and ``hepanav web ...`` to the root app."""
    app.command("serve")(serve)
    app.add_typer(web_app, name="web")


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    db: str | None = typer.Option(
        None, "--db", help="Application database URL (default $HEPANAV_WEB_DB or a SQLite file)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address tcp://host:port (default: LocalCluster)."
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Folder with cases/, jobs/, uploads/ (default $HEPANAV_WEB_DATA_DIR).",
    ),
) -> None:
    """Run the web application (FastAPI + uvicorn). Settings: HEPANAV_WEB_* variables."""
    import uvicorn

    from hepanav.web.app import create_app
    from hepanav.web.settings import WebSettings

    overrides = {
        k: v for k, v in {"db": db, "scheduler": scheduler, "data_dir": data_dir}.items() if v
    }
    settings = WebSettings(**overrides)
    typer.echo(f"HepaNav web application on http://{host}:{port} (data in {settings.data_dir})")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@web_app.command("create-user")
def create_user(
    username: str = typer.Option(..., "--username", help="Login name."),
    role: str = typer.Option(..., "--role", help="radiologist, surgeon, coordinator or admin."),
    db: str | None = typer.Option(None, "--db", help="Application database URL."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input (for scripts)."
    ),
) -> None:
    """Create a user (the first admin, too). The password is asked for, never an option."""
    import sys

    from sqlalchemy.orm import Session

    from hepanav.web.models import make_web_engine
    from hepanav.web.security import create_user as add
    from hepanav.web.settings import WebSettings

    settings = WebSettings(**({"db": db} if db else {}))
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with Session(make_web_engine(settings.db)) as session:
        add(session, username, password, role)
    typer.echo(f"user {username} ({role}) created")
