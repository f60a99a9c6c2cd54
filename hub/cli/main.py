"""``tahub``: run and administer a hub. A thin shell over the services.

::

    tahub serve [--host H] [--port P] [--workers N]   run the hub (uvicorn; N processes)
    tahub admin migrate                          bring the metadata store to the latest schema
    tahub admin sweep                            clean expired uploads and orphan objects
    tahub admin member add NAME --kind K --role R [--role R]   new member + first client
    tahub admin member list                      members and their clients (never secrets)
    tahub admin client add ORG_ID --role R       another client for a member
    tahub admin client revoke CLIENT_ID          revoke a client (its tokens stop working)
    tahub admin person add|list|password|roles|disable   people and their sign-in
                                                 (hub.cli.people, docs/people.md)
    tahub admin settings-doc [--out FILE]        the settings reference (docs/settings.md)
    tahub admin budget show [--dataset D]        privacy budget spent per dataset and member
    tahub admin reports-key                      a new key for TAHUB_REPORTS_KEYS (crowd reports)
    tahub admin purge-reports                    delete crowd reports' texts past retention
    tahub review precision [--since D] [--until D] [--json]   per-tag precision of the
                                                 suggested tags (hub.cli.review)
    tahub audit list [--last N] [--details] [--since --until --org --actor --action]
                                                 the latest entries as sentences, with names
    tahub audit verify                           recompute the audit chain; exit 1 if broken
    tahub audit export [--format jsonl|csv] [--since --until --org --actor --action]
    tahub contracts list | schema [--kind K] [--out FILE] | check FILE...
    tahub policy check FILE... | schema [--out FILE]   sharing policy files, offline
    tahub policy propose|proposals|show|approve|reject|withdraw|restore|active|export|import
                 |budgets                        four-eyes policy changes on a hub
                                                 (connectors.governance.cli, docs/governance.md)
    tahub sources add|list|show|change|disable|enable|remove|fetch   news feeds and folders
                                                 (hub.cli.sources, docs/osint.md)
    tahub collect [--once] [--source NAME]       fetch the sources that are due
    tahub demo                                   the guided demo (hub.demo)
    tahub login [--hub URL] [--profile P] [--no-browser] | logout [--profile P]
                                                 a person signs in; the hub is remembered
                                                 with the sign-in (connectors.common.login)
    tahub query run|estimate|budget|policies|history|show   an analyst's DP queries
                                                 (connectors.analyst.cli, docs/analyst.md)
    tahub query releases|release|publish|withdraw   published releases (docs/releases.md)

Settings come from ``TAHUB_*`` environment variables and the TOML file
``TAHUB_SETTINGS_FILE`` names (``docs/settings.md``); health, metrics, logs, workers and
shutdown are in ``docs/operations.md``. A user error prints its message and exits with
status 1, without a traceback.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer

from connectors.analyst.cli import app as query_app
from connectors.common.cli import user_errors
from connectors.common.login import login_command, logout_command
from hub.cli import context
from hub.cli.admin import app as admin_app
from hub.cli.audit import app as audit_app
from hub.cli.checks import contracts_app, policy_app
from hub.cli.review import app as review_app
from hub.cli.sources import app as sources_app
from hub.cli.sources import collect
from hub.logging import configure_logging

__all__ = ["app", "main"]

log = structlog.get_logger("hub.cli")

app = typer.Typer(
    name="tahub",
    help="Run and administer a tahub hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(admin_app, name="admin")
app.add_typer(contracts_app, name="contracts")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(review_app, name="review")
app.add_typer(query_app, name="query")
app.add_typer(sources_app, name="sources")
app.command("collect")(collect)
app.command("login")(login_command)
app.command("logout")(logout_command)


# -- serve --------------------------------------------------------------------------------
@app.command()
@user_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (TAHUB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (TAHUB_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Hub processes on the one port (TAHUB_WORKERS).")
    ] = None,
) -> None:
    """Run the hub (docs/operations.md).

    Migrations run here, once; a bad setting, contract or database fails here with a clear
    message. With several workers, the ingest sweep runs here too, and uvicorn then starts
    the worker processes, each building its app from the environment
    (``hub.api.app:app_from_env``); their metrics are summed through
    ``PROMETHEUS_MULTIPROC_DIR`` (default ``<data_dir>/prometheus``, emptied here). On
    SIGTERM the hub stops accepting connections and gives in-flight requests
    ``TAHUB_SHUTDOWN_GRACE_SECONDS`` to finish.
    """
    import uvicorn

    settings = context.settings(host=host, port=port, workers=workers)
    swept: dict[str, int] = {}
    with context.services(settings) as services:
        if settings.workers > 1:  # once here; the workers do not sweep
            swept = services.sweep()
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }
    if settings.workers == 1:
        from hub.api.app import create_app

        uvicorn.run(create_app(settings), **common)
        return
    from hub.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    # The workers read their settings from the environment: pass the options given here.
    given = {"TAHUB_HOST": host, "TAHUB_PORT": port, "TAHUB_WORKERS": workers}
    os.environ.update({name: str(value) for name, value in given.items() if value is not None})
    metrics_dir = os.environ.get(MULTIPROC_ENV) or str(settings.data_dir / "prometheus")
    os.environ[MULTIPROC_ENV] = str(prepare_multiprocess_dir(Path(metrics_dir)).resolve())
    log.info("starting workers", workers=settings.workers, **swept)
    uvicorn.run("hub.api.app:app_from_env", factory=True, workers=settings.workers, **common)


# -- demo ---------------------------------------------------------------------------------
@app.command()
@user_errors
def demo(
    port: Annotated[int | None, typer.Option(help="Port to serve on (TAHUB_PORT).")] = None,
    partners_dir: Annotated[
        Path | None,
        typer.Option(help="Partner-side folder. Default: tahub-demo-partners beside the data."),
    ] = None,
    reset: Annotated[bool, typer.Option(help="Delete earlier demo data first.")] = False,
    serve: Annotated[
        bool, typer.Option(help="Keep serving after loading the data (until Ctrl-C).")
    ] = True,
) -> None:
    """Run the hub with five demo members whose synthetic data went through the connector."""
    demo_module = importlib.import_module("hub.demo")  # loaded only for this command
    settings = context.settings(port=port)
    configure_logging(settings)
    demo_module.main(settings, partners_dir=partners_dir, reset=reset, serve=serve)


def main() -> None:
    """Entry point of the ``tahub`` command."""
    app()


if __name__ == "__main__":
    main()
