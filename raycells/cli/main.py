"""The `raycells` entry point: joins the command groups."""

import typer

from . import cv, data, evaluate, report, transfer, tune

app = typer.Typer(
    name="raycells",
    help="Train and evaluate white-blood-cell image classifiers the way hematology papers "
    "report them, on one machine or a Ray cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data.app, name="data")
app.command("cv")(cv.cv)
app.command("tune")(tune.tune)
app.command("transfer")(transfer.transfer)
app.command("evaluate")(evaluate.evaluate)
app.command("report")(report.report)

if __name__ == "__main__":
    app()
