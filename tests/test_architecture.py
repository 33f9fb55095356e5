"""The architecture that docs/architecture.md describes, checked: imports only go down the data
flow, settings load without torch, every setting has exactly one option, and the run directory
holds what the document says."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import typer

from raycells.cli.main import app
from raycells.cli.options import SETTINGS
from raycells.settings import Experiment, Placement, Transfer

PACKAGE = Path(__file__).resolve().parents[1] / "raycells"
DOCUMENT = PACKAGE.parent / "docs" / "architecture.md"
STAGES = {"data": 1, "train": 2, "runs": 3, "use": 4, "report": 5, "cli": 6}
"""The flow's stages in order; top-level modules (settings, errors, files, metrics) are 0."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """raycells module -> the raycells modules it imports (anywhere in its body)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join([*base, node.module] if node.module else base)
                if target.startswith("raycells"):
                    found.add(target)
                    found.update(f"{target}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name.startswith("raycells"))
        graph[name] = found
    return {name: {t for t in targets if t in graph} for name, targets in graph.items()}


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES.get(parts[1], 0) if len(parts) > 2 or parts[-1] in STAGES else 0


def test_no_module_imports_from_a_later_stage_of_the_flow():
    # `raycells` itself is the public face, like the CLI: `raycells.load_model` (loaded lazily).
    later = [f"{module} imports {target}" for module, targets in _imports().items()
             if module != "raycells" for target in targets if _stage(target) > _stage(module)]
    assert later == []


def test_inference_does_not_import_the_training_loop():
    graph, seen, todo = _imports(), set(), ["raycells.train.predict"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    assert "raycells.train.loop" not in seen


@pytest.mark.parametrize("module", ["raycells.settings", "raycells.train.job"])
def test_settings_and_a_folds_job_load_without_torch_or_kornia(module):
    """Settings are checked before anything heavy loads; a fold's job is unpickled by Ray
    Train's controller, a process of its own per fold that would otherwise import torch (~2 s of
    CPU) for nothing."""
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'kornia')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_one_worker_folds_controller_loads_no_torch_either():
    """The controller also unpickles the trainer's backend config: TorchTrainer's imports torch
    to set up torch.distributed, which a fold of one worker does not use; it gets Ray Train's
    plain trainer, whose config loads none (benchmarks/process_cpu.py beside fold_overhead.py:
    the controllers' CPU halved). A fresh interpreter unpickles each config."""
    import pickle

    from raycells.train.trainer import trainer_class

    def loads_torch(workers: int) -> bool:
        config = pickle.dumps(trainer_class(workers)(lambda: None).backend_config)
        code = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
                "print('torch' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], input=config, capture_output=True,
                             check=True)
        return out.stdout.strip() == b"True"

    assert not loads_torch(1)
    assert loads_torch(2)  # TorchTrainer, for workers that talk to each other


def test_every_setting_has_exactly_one_option_and_every_option_a_setting():
    expected = ({f.name for f in fields(Experiment)} - {"transfer"}) | {f.name for f in fields(Placement)} | (
        {f.name for f in fields(Transfer)} - {"source"})
    assert set(SETTINGS) == expected


def test_commands_that_train_take_the_same_settings():
    commands = typer.main.get_command(app).commands
    options = {name: {param.name for param in commands[name].params} for name in ("cv", "tune", "transfer")}
    settings = {name: options[name] & set(SETTINGS) for name in options}
    assert settings["cv"] == set(SETTINGS) - {"head_epochs", "head_lr", "freeze_batchnorm"}
    # tune searches transfers too (--from); its trials are not recorded in MLflow.
    assert settings["tune"] == set(SETTINGS) - {"tracking", "mlflow_uri"}
    assert settings["transfer"] == set(SETTINGS) - {"weights"}
    # A search takes the same options wherever it runs.
    assert {"metric", "samples", "grace_epochs"} <= options["cv"] & options["tune"]
    assert "allow_overlap" in options["cv"] & options["transfer"]


def test_the_run_directory_holds_what_the_document_names(aml_run):
    document = DOCUMENT.read_text()
    names = {path.name for path in aml_run.iterdir()}
    names |= {path.name for path in (aml_run / "fold-0").iterdir()}
    names |= {path.name for path in (aml_run / "fold-0" / "checkpoint").glob("epoch-*/*")}
    names = {re.sub(r"^fold-\d+$", "fold-<k>", name) for name in names if not name.startswith(".")}
    missing = sorted(name for name in names if name not in document)
    assert missing == []


def test_a_folds_result_files_and_columns_are_named_in_one_module():
    """runs/results.py names a fold's predictions.parquet, metrics.json, history.csv and the
    prob_<class> columns; every other module goes through it (docstrings may mention them).
    Allowed: a report's own metrics.json (report/writers.py) and predict's own table
    (use/predict.py), which are other files of the same name."""
    names = {"predictions.parquet", "metrics.json", "history.csv"}
    allowed = {"raycells.runs.results": names, "raycells.report.writers": {"metrics.json"},
               "raycells.use.predict": {"predictions.parquet"}}
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if node.value in names - allowed.get(module, set()):
                    found.append(f"{module}: {node.value}")
                if node.value.startswith("prob_") and module != "raycells.runs.results":
                    found.append(f"{module}: {node.value}...")
    assert found == []
