"""`agent-stack`: serve, migrate, mint development tokens, open psql, stop the embedded
database."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.core.config_errors import load_settings
from app.core.logging import configure_logging
from app.core.settings import REPO_ROOT, Settings, get_settings

BACKEND_DIR = Path(__file__).resolve().parents[1]
#: Where `agent-stack fleet` keeps HAProxy's configuration, the nodes' logs, its control socket.
FLEET_DIR = REPO_ROOT / ".data" / "fleet"


def alembic_config(url: str) -> Config:
    cfg = Config(str(BACKEND_DIR / "alembic.ini"))
    cfg.attributes["url"] = url
    return cfg


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[tuple[str, Path | None]]:
    """The configured DATABASE_URL, or the embedded server (started for the duration unless it
    was already running). Also yields the embedded server's binaries folder, if any."""
    if settings.database_url:
        yield settings.database_url, None
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from app.core.embedded_db import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.embedded_pg_dir)
    url = embedded.start()
    try:
        yield url, embedded.bin_dir
    finally:
        embedded.stop()


def _exit_on_sigterm(signum: int, _: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def metrics_directory() -> Iterator[Path]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this server's workers, removed at exit: samples of
    an earlier run must not leak into this one's counters. Set before any worker (or this
    process) imports prometheus_client."""
    directory = Path(tempfile.mkdtemp(prefix="agent-stack-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    # Uvicorn re-raises the signal that stopped it once it has shut down. SIGTERM's default
    # action would end the process on the spot, skipping the clean-up below (the embedded
    # database would be left running); as an exception it unwinds through it.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with metrics_directory(), database(settings) as (url, _):
        command.upgrade(alembic_config(url), "head")
        # Worker processes read DATABASE_URL from the environment: they reuse this server.
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        uvicorn.run(
            "app.main:create_served_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers,
            log_level=settings.log_level.lower(),
            # Logging is ours (app.core.logging): one format, and our access line (with the
            # route, the request id and the user) instead of uvicorn's.
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=args.graceful_s,
            proxy_headers=True,
        )


def _fleet(_: argparse.Namespace, settings: Settings) -> None:
    import asyncio

    from app.fleet.fleet import FleetOptions
    from app.fleet.supervisor import supervise

    options = FleetOptions(
        run_dir=FLEET_DIR,
        nodes=settings.fleet_nodes,
        port=settings.port,
        bind=settings.host,
        reply_grace_s=settings.reply_shutdown_grace_s,
    )
    with database(settings) as (url, _bin_dir):
        # Migrate once, then every node starts on the same, current database.
        command.upgrade(alembic_config(url), "head")
        asyncio.run(supervise(options, url))


def _fleet_restart(_: argparse.Namespace, _settings: Settings) -> None:
    import asyncio

    from app.fleet.supervisor import request_restart

    if not asyncio.run(request_restart(FLEET_DIR)):
        raise SystemExit(1)


def _db_stop(_: argparse.Namespace, settings: Settings) -> None:
    if settings.database_url:
        print("DATABASE_URL is set: there is no embedded database to stop", file=sys.stderr)
        return
    warnings.filterwarnings("ignore", module="platformdirs")
    from app.core.embedded_db import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.embedded_pg_dir)
    if not embedded.stop_if_unused():
        print(
            f"the embedded database in {embedded.pgdata} is in use by a running agent-stack "
            "command (make dev?); stop that instead",
            file=sys.stderr,
        )
        raise SystemExit(1)
    print(f"embedded PostgreSQL in {embedded.pgdata} is stopped", file=sys.stderr)


def _token(args: argparse.Namespace, settings: Settings) -> None:
    from app.core.security import LocalTokens

    print(LocalTokens(settings).mint(args.sub, email=args.email, ttl_s=args.ttl))


def _psql(_: argparse.Namespace, settings: Settings) -> None:
    import subprocess

    from app.core.database import ConnectParams

    with database(settings) as (url, bin_dir):
        psql = str(bin_dir / "psql") if bin_dir else shutil.which("psql")
        env = {**os.environ, **ConnectParams.from_url(url).libpq_env()}
        subprocess.run([psql or "psql", *sys.argv[2:]], env=env, check=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="agent-stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)

    serve = sub.add_parser("serve", help="migrate, then serve the API")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--graceful-s", type=int, default=10, dest="graceful_s")

    sub.add_parser("migrate", help="upgrade the database to the newest revision")
    sub.add_parser("migrate-rollback", help="undo the newest applied revision")
    create = sub.add_parser("migrate-create", help="autogenerate a revision from the models")
    create.add_argument("message")
    sub.add_parser("migrate-check", help="fail if the models and the migrations disagree")

    token = sub.add_parser("token", help="print a development bearer token (local auth mode)")
    token.add_argument("sub", help="the token subject: the user")
    token.add_argument("--email", default=None)
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")

    sub.add_parser(
        "fleet", help="FLEET_NODES nodes on PORT+1.. behind HAProxy on PORT, until Ctrl-C"
    )
    sub.add_parser("fleet-restart", help="restart the running fleet's nodes one at a time")
    sub.add_parser("psql", help="open psql on the service's database")
    sub.add_parser("db-stop", help="stop the embedded PostgreSQL unless a command is using it")

    args, _ = parser.parse_known_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, settings.effective_log_format, settings.node_name)

    try:
        _run(args, settings)
    except KeyboardInterrupt:
        # Ctrl-C: everything above has unwound and cleaned up; no traceback for it.
        raise SystemExit(128 + signal.SIGINT) from None


def _run(args: argparse.Namespace, settings: Settings) -> None:
    if args.cmd == "serve":
        _serve(args, settings)
    elif args.cmd == "fleet":
        _fleet(args, settings)
    elif args.cmd == "fleet-restart":
        _fleet_restart(args, settings)
    elif args.cmd == "db-stop":
        _db_stop(args, settings)
    elif args.cmd == "token":
        _token(args, settings)
    elif args.cmd == "psql":
        _psql(args, settings)
    else:
        with database(settings) as (url, _):
            cfg = alembic_config(url)
            if args.cmd == "migrate":
                command.upgrade(cfg, "head")
            elif args.cmd == "migrate-rollback":
                command.downgrade(cfg, "-1")
            elif args.cmd == "migrate-check":
                command.check(cfg)
            else:
                command.upgrade(cfg, "head")
                command.revision(cfg, message=args.message, autogenerate=True)


if __name__ == "__main__":
    main()
