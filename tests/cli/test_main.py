"""The entry point and the package's declarations: version, Python, licence."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import raycells
from raycells.cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_printed_and_matches_the_package():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"raycells {raycells.__version__}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == raycells.__version__


def test_declared_python_and_licence_are_the_truth():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11" and sys.version_info >= (3, 11)
    assert project["license"]["text"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert any(dependency.startswith("pyyaml") for dependency in project["dependencies"])


def test_shell_completion_is_offered(monkeypatch):
    # Typer names the shell from the process tree: under `make` that is sh, which it cannot serve.
    monkeypatch.setattr("typer.completion._get_shell_name", lambda: "bash")
    result = CliRunner().invoke(app, ["--show-completion"], prog_name="raycells")
    assert result.exit_code == 0 and "_RAYCELLS_COMPLETE" in result.output, result.output


HEAVY = ("torch", "torchvision", "ray", "sklearn", "scipy", "pandas", "pyarrow", "matplotlib",
         "mlflow", "kornia")


def test_a_command_collects_rarely_and_leaves_the_libraries_objects_to_the_end_of_its_process():
    """Python's collector passes over the objects torch and the other libraries make, while they
    are imported (~0.7 s a command) and as the process ends (1.2 s), measured by
    benchmarks/process_gc.py: the entry point makes the passes rarer and freezes the objects at
    exit, after the exit handlers registered after it (the libraries' own)."""
    code = ("import atexit, gc\n"
            "atexit.register(lambda: print(gc.get_freeze_count(), flush=True))\n"
            "import raycells.cli.main\n"
            "print(*gc.get_threshold())\n"
            "import torch\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    thresholds, frozen = out.stdout.splitlines()
    assert thresholds == "100000 50 100"
    assert int(frozen) > 100_000  # torch alone makes some 200,000


def test_the_cli_answers_without_loading_the_heavy_libraries():
    """--version, every --help and TAB completion import none of HEAVY (seconds each on this
    machine): each command imports what it needs when it runs. A fresh interpreter, so that
    nothing this test session loaded counts."""
    code = f"""
import subprocess
import sys
from typer.testing import CliRunner
from raycells.cli.main import app
runner = CliRunner()
asks = [["--version"], ["--help"], ["data", "--help"]] + [
    [name, "--help"] for name in ("cv", "tune", "transfer", "evaluate", "predict", "export",
                                  "explain", "report")] + [["data", name, "--help"] for name in
                                                          ("index", "inspect", "demo")]
for args in asks:
    result = runner.invoke(app, args, terminal_width=80)
    assert result.exit_code == 0, (args, result.output)
completion = runner.invoke(app, [], prog_name="raycells", env={{
    "_RAYCELLS_COMPLETE": "complete_bash", "COMP_WORDS": "raycells tr", "COMP_CWORD": "1"}})
assert completion.output.split() == ["transfer"], completion.output
print(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r})))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("command", ["cv", "tune", "transfer"])
def test_help_fits_80_columns_with_defaults_as_written_and_rare_options_last(command):
    """cv --help was 377 lines at 80 columns, in help columns 23 characters wide (the widest
    option names of every panel beside them), with option names cut short (…) and defaults
    printed as Python dicts."""
    text = CliRunner().invoke(app, [command, "--help"], terminal_width=80).output
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80 and "…" not in text and "{'" not in text
    panels = [line.split()[1] for line in lines if line.startswith("╭─")]
    assert panels[-1] == "Rarely" and panels.index("Training") < panels.index("Cluster")
    assert ("Transfer" in panels) == (command != "cv")  # tune --from RUN searches transfers
    assert len(lines) < 300
    assert "oversample, target=150" in " ".join(text.replace("│", " ").split())  # demo's --sampling
