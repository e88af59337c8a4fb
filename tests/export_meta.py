"""What every export's kerasllm.json says about the run it came from
(shared by the export tests of each kind of run)."""

import json
import math
from importlib import metadata
from pathlib import Path

from kerasllm import config as config_lib


def check_provenance(version_dir, run_dir) -> dict:
    """Asserts the provenance fields of `<version_dir>/assets.extra/kerasllm.json`
    against the run directory (its newest checkpoint's state and its config);
    returns the file's contents."""
    meta = json.loads((Path(version_dir) / "assets.extra" / "kerasllm.json").read_text())
    run_dir = Path(run_dir)
    config = config_lib.load(run_dir / "config.yaml")
    latest = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    state = json.loads((latest / "state.json").read_text())
    assert meta["run"] == str(run_dir.resolve()) and Path(meta["run"]).is_absolute()
    # The best weights are exported: the step of the best validation, in optimizer steps.
    assert meta["step"] == state["best_step"] // config.train.grad_accum_steps > 0
    assert math.isfinite(meta["best_val_loss"]) and meta["best_val_loss"] == state["best_val_loss"]
    assert meta["config_hash"] == config_lib.identity_hash(config) and meta["config_hash"].startswith("sha256:")
    assert meta["kerasllm_version"] == metadata.version("kerasllm")
    return meta
