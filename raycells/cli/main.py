"""The `raycells` entry point: joins the command groups."""

from typing import Annotated

import typer

from .. import __version__
from ..collector import collect_rarely
from . import cv, data, evaluate, explain, export, predict, report, transfer, tune
from .common import stop_on_sigterm

collect_rarely()  # before the libraries are imported, which commands do as they need them

app = typer.Typer(
    name="raycells",
    help="Train and evaluate white-blood-cell image classifiers the way hematology papers "
    "report them, on one machine or a Ray cluster.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_show_locals=False,
)


def _version(asked: bool) -> None:
    if asked:
        typer.echo(f"raycells {__version__}")
        raise typer.Exit()


@app.callback()
def _every_command(context: typer.Context, version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
        ) -> None:
    # SIGTERM (schedulers, `timeout`) ends every command like Ctrl-C, with exit status 143.
    context.with_resource(stop_on_sigterm())


app.add_typer(data.app, name="data")
app.command("cv")(cv.cv)
app.command("tune")(tune.tune)
app.command("transfer")(transfer.transfer)
app.command("evaluate")(evaluate.evaluate)
app.command("predict")(predict.predict)
app.command("export")(export.export)
app.command("explain")(explain.explain)
app.command("report")(report.report)

if __name__ == "__main__":
    app()
