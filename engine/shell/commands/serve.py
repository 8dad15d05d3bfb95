"""`loyalty serve PROGRAM --db URL [--host 127.0.0.1] [--port 8080] [--workers N]`: the engine over
HTTP (CONTRACT.md "Service", engine/shell/service.py), served by uvicorn.

The token comes from ``LOYALTY_API_TOKEN`` and nowhere else (never a flag: flags show in ``ps``);
without one the service does not start. The program and the store are checked here, before uvicorn
starts, so a bad file or URL is one clear line and exit 1. Each uvicorn worker builds its own app
(and so its own Engine) through the factory ``engine.shell.service:app_from_env``.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

import click

from engine.shell.commands import lang_option, language

MIN_TOKEN = 16  # characters; a shorter bearer token is too easy to guess
GRACE = 10      # seconds in-flight requests may take to finish after SIGTERM


@click.command()
@click.argument("program_path", metavar="PROGRAM")
@click.option("--db", "db", required=True, help="SQLite path, :memory:, or a PostgreSQL URL")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (more than one only on PostgreSQL)")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@lang_option
def serve(program_path: str, db: str, host: str, port: int, workers: int, log_level: str,
          lang: Optional[str] = None) -> None:
    """Serve PROGRAM over HTTP: POST /events, POST /quote, GET /members/{id}, GET /openapi.json,
    GET /healthz, GET /readyz, GET /metrics, POST /webhooks/shopify. Needs LOYALTY_API_TOKEN (clients send Authorization: Bearer TOKEN)."""
    from engine.format.messages import word

    lang = language(lang)

    def _fail(code: str, **args) -> None:   # the line in the language asked for (the JSON log lines stay English)
        click.echo(f"loyalty serve: {word(code, lang, **args)}", err=True)
        sys.exit(1)

    token = os.environ.get("LOYALTY_API_TOKEN", "")
    if not token.strip():
        _fail("serve.no_token")
    if token != token.strip() or len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        _fail("serve.bad_token", n=MIN_TOKEN)
    try:
        import litestar  # noqa: F401
        import uvicorn
    except ImportError as exc:
        _fail("serve.needs_extra", name=exc.name)

    from engine.shell.loading import load_or_exit
    from engine.store import StoreError, open_store, parse_db

    program = load_or_exit(program_path, lang)
    spec = parse_db(db)
    if workers > 1 and not spec.shared:
        _fail("serve.workers", n=workers)
    try:
        open_store(db, program.id).close()
    except (StoreError, ValueError, OSError) as exc:
        _fail("cmd.store_open", detail=exc)

    _metrics_dir()
    os.environ["LOYALTY_SERVE_PROGRAM"] = str(Path(program_path).resolve())
    os.environ["LOYALTY_SERVE_DB"] = spec.absolute()
    timeout = os.environ.get("LOYALTY_BODY_TIMEOUT", "")
    if timeout:
        try:
            if not 0 < float(timeout) <= 3600:
                raise ValueError
        except ValueError:
            _fail("serve.bad_timeout", value=repr(timeout))
    # one JSON line like every line the service writes
    click.echo(json.dumps({"level": "info", "logger": "loyalty.serve", "program": program.id, "digest": program.digest,
                           "message": f"serving {program.id} on http://{host}:{port} ({workers} worker(s)); "
                                      "Ctrl-C or SIGTERM stops"}, ensure_ascii=False), err=True)
    from engine.shell.service import uvicorn_log_config

    # SIGTERM (or Ctrl-C): uvicorn stops accepting, lets in-flight requests finish (at most
    # GRACE seconds), then the app's shutdown closes the store on its engine thread: an event is
    # committed whole or not at all, never half-written.
    uvicorn.run("engine.shell.service:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, server_header=False, timeout_graceful_shutdown=GRACE,
                log_config=uvicorn_log_config(log_level), timeout_keep_alive=5)


def _metrics_dir() -> None:
    """Prometheus multi-process mode: every worker writes its samples under PROMETHEUS_MULTIPROC_DIR
    and GET /metrics adds them up. A given directory is emptied of an earlier run's files; without
    one, a fresh temporary directory is used."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for old in path.glob("*.db"):
            old.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loyalty-metrics-")


COMMANDS = [serve]
