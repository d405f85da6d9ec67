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


@cli.command(name="trident-coords")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="TRIDENT coords folder to write")
@click.option("--env", "-e", default=None, help="Kedro environment whose catalog holds the patch index")
def trident_coords(out: str, env: str | None) -> None:
    """Write this project's tumour patches as TRIDENT coordinate files (``<out>/patches/<slide>_patches.h5``), for
    ``run_batch_of_slides.py --task feat --coords_dir <out>`` to embed exactly them (docs: foundation models)."""
    from pathlib import Path

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from gb_kedro.patch_features import export_trident_coords

    project = Path.cwd()
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        catalog = session.load_context().catalog
        index, store = catalog.load("patch_index"), catalog.load("patch_stores")
    try:
        folder = export_trident_coords(index, store, out)
    except Exception as exc:
        cause = find_input_error(exc)
        if cause is None:
            raise
        raise click.ClickException(f"bad input: {cause}") from None
    click.echo(f"{index['slide_id'].nunique()} slides, {len(index)} tumour patches -> {folder / 'patches'}")
