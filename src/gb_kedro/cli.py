"""Project CLI: Kedro's own ``kedro run``, with bad input reported as one line instead of a traceback.

Kedro picks up ``run`` from ``<package>.cli``; every option of the stock command is kept.
"""

from __future__ import annotations

import click
from kedro.framework.cli.project import run as _kedro_run

from gb_kedro.errors import find_input_error


@click.group(name="gb-kedro")
def cli() -> None:
    """gb-kedro project commands."""


def _run(**kwargs):
    import os

    if kwargs.get("env"):  # the pipelines' shape is read from the run's environment when they are built
        os.environ["KEDRO_ENV"] = kwargs["env"]
    try:
        return _kedro_run.callback(**kwargs)
    except Exception as exc:  # Kedro may wrap a dataset's error; report ours plainly if it is inside.
        cause = find_input_error(exc)
        if cause is not None:
            _fail_mlflow_run(str(cause))
            raise click.ClickException(f"bad input: {cause}") from None
        raise


def _fail_mlflow_run(message: str) -> None:
    """The run kedro-mlflow opened (if one is still open) ends FAILED, with the message as a tag."""
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.set_tag("gb_kedro.error", message[:5000])
        mlflow.end_run(status="FAILED")


run = click.Command(
    name="run",
    callback=_run,
    params=list(_kedro_run.params),
    help=_kedro_run.help,
    short_help=_kedro_run.short_help,
)
cli.add_command(run)
