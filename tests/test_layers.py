"""The import contracts in setup.cfg ([importlinter]) hold, and they catch
what they are for: a lower layer importing a higher one, and an import cycle.
Runs `lint-imports`, so the test command (and CI) checks the contracts."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS = [
    "cli",
    "kerasllm.tasks",
    "kerasllm.evaluation | kerasllm.export",
    "kerasllm.training",
    "kerasllm.inference",
    "kerasllm.loaded_run",
    "kerasllm.models | kerasllm.data",
    "kerasllm.config | kerasllm.progress | kerasllm.run_dir | kerasllm.pretrained",
    "kerasllm.task_registry",
    "kerasllm.errors | kerasllm.quiet | kerasllm.files | kerasllm.compat | kerasllm.version | kerasllm.pictures",
]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the project in `cwd` (its setup.cfg, its packages:
    lint-imports puts `cwd` first on the import path)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_the_layers_are_cli_tasks_runs_models_and_data_then_basics():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    layers = config["importlinter:contract:layers"]["layers"].split("\n")
    assert [line.strip() for line in layers if line.strip()] == LAYERS
    assert config["importlinter:contract:acyclic"]["type"] == "acyclic_siblings"
    assert config["importlinter"]["root_packages"].split() == ["kerasllm", "cli"]


def _copy_project(tmp_path: Path) -> Path:
    """The packages' Python files and setup.cfg, to break on purpose."""
    for folder in ("kerasllm", "cli"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.txt"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    return tmp_path


def _add_function_import(module: Path, statement: str) -> None:
    """A function-level import counts as much as a module-level one."""
    with module.open("a") as f:
        f.write(f"\n\ndef _added_for_the_test():\n    {statement}\n")


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    project = _copy_project(tmp_path)
    assert lint_imports(project).returncode == 0  # the copy is what gets checked
    _add_function_import(project / "kerasllm/models/lstm.py", "from kerasllm.training import optim")
    _add_function_import(project / "kerasllm/config.py", "from kerasllm.data import pipelines")
    result = lint_imports(project)
    assert result.returncode != 0
    assert "kerasllm.models is not allowed to import kerasllm.training" in result.stdout
    assert "kerasllm.config is not allowed to import kerasllm.data" in result.stdout


def test_an_import_cycle_inside_a_package_breaks_the_contract(tmp_path):
    """shards <- corpus <- prepare: shard I/O must not reach back up."""
    project = _copy_project(tmp_path)
    _add_function_import(project / "kerasllm/data/shards.py", "from kerasllm.data import corpus")
    result = lint_imports(project)
    assert result.returncode != 0
    assert "No cycles are allowed in kerasllm.data." in result.stdout
