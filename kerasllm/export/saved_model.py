"""Writing a run as a TF Serving model version, and checking what it holds.

Layout (TF Serving's): `<base>/<name>/<version>/` with `saved_model.pb`,
`variables/`, and `assets.extra/` (`tf_serving_warmup_requests`, replayed by
the server on load, and `kerasllm.json`, what the export holds and where
it comes from: the run's absolute path, the training step of the weights,
the best validation loss, a hash of the run's identity config and the
kerasllm version, besides the name, version and signatures). A version is
written under a hidden name and renamed into place, so a server watching
`<base>/<name>` never sees a half-written one. The export is refused if its
graph holds an op outside `serving_ops.txt` (core TF and TF Text ops that
stock TF Serving runs).

Example:
    export_run("runs/shakespeare-char", "shakespeare")   # saved_models/shakespeare/1
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import tensorflow as tf

from kerasllm import progress
from kerasllm.errors import UserError
from kerasllm.files import temporary_sibling

ALLOWED_OPS_FILE = Path(__file__).with_name("serving_ops.txt")
WARMUP_FILE = "tf_serving_warmup_requests"
META_FILE = "kerasllm.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def versions(model_dir: Path) -> list[int]:
    """Version numbers present under a model directory, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def resolve_model_dir(path: str | Path) -> Path:
    """A version directory as given, or the newest version under a model directory."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    found = versions(path)
    if not found:
        raise UserError(f"--model {path}: no SavedModel there (expected {path}/<version>/saved_model.pb); "
                        "make one with `kerasllm export`")
    return path / str(found[-1])


def graph_ops(export_dir: str | Path) -> set[str]:
    """Every op type in a SavedModel: top-level graph and all functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(export_dir) / "saved_model.pb").read_bytes())
    ops = set()
    for meta_graph in saved.meta_graphs:
        library = meta_graph.graph_def.library
        functions = {f.signature.name for f in library.function}
        ops |= {n.op for n in meta_graph.graph_def.node}
        for function in library.function:
            ops |= {n.op for n in function.node_def}
        ops -= functions  # direct calls of library functions are not ops
    return ops


def allowed_ops() -> set[str]:
    lines = ALLOWED_OPS_FILE.read_text().splitlines()
    return {line.split("#")[0].strip() for line in lines} - {""}


def disallowed_ops(export_dir: str | Path) -> set[str]:
    return graph_ops(export_dir) - allowed_ops()


def write_warmup(export_dir: Path, model_name: str, requests: list) -> None:
    """`requests`: (signature name, {input: numpy value}) pairs."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = export_dir / "assets.extra" / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _check_target(base_dir: str | Path, name: str, version: int | None) -> tuple[Path, int]:
    if not _NAME.match(name):
        raise UserError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (it becomes a directory name)")
    model_dir = Path(base_dir) / name
    if version is None:
        present = versions(model_dir)
        version = present[-1] + 1 if present else 1
    elif version < 1:
        raise UserError(f"--version {version}: TF Serving versions are positive integers")
    if (model_dir / str(version)).exists():
        raise UserError(f"{model_dir / str(version)} already exists; pick another --version or leave it out for the next free one")
    return model_dir, version


def write_version(module, base_dir: str | Path, name: str, version: int | None, warmup: list, meta: dict) -> dict:
    """Saves `module` (with its `signatures()`) as `<base_dir>/<name>/<version>`."""
    from kerasllm.export.xla_free import no_xla_ops

    model_dir, version = _check_target(base_dir, name, version)
    final = model_dir / str(version)
    staging = temporary_sibling(final)
    shutil.rmtree(staging, ignore_errors=True)
    new_model_dir = not model_dir.exists()
    try:
        staging.mkdir(parents=True)
    except OSError as e:
        raise UserError(f"--base-dir {base_dir}: cannot write {model_dir} ({e.strerror or e}); "
                        "choose a directory you can write to") from None
    start = time.perf_counter()
    try:
        with no_xla_ops():
            signatures = module.signatures()
            with progress.phase(f"export: tracing {len(signatures)} signature(s)"):
                for function in signatures.values():
                    function.get_concrete_function()  # traced here, so that saving below only writes
            with progress.phase("export: saving"):
                tf.saved_model.save(module, str(staging), signatures=signatures)
        with progress.phase("export: checking the graph's ops, writing warmup requests"):
            bad = disallowed_ops(staging)
            if bad:
                raise RuntimeError(
                    f"export refused: the graph holds ops TF Serving may not have: {sorted(bad)} "
                    f"(allowed: {ALLOWED_OPS_FILE})"
                )
            write_warmup(staging, name, warmup)
        meta = {**meta, "name": name, "version": version, "signatures": sorted(module.signatures())}
        (staging / "assets.extra" / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
        try:
            os.rename(staging, final)
        except OSError:
            if final.exists():  # another export took this version meanwhile
                raise UserError(f"{final} appeared while exporting (another export?); run again for the next "
                                "free version") from None
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if new_model_dir and model_dir.is_dir() and not any(model_dir.iterdir()):
            model_dir.rmdir()  # a failed first export leaves no empty model directory behind
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in final.rglob("*") if p.is_file())
    return {"path": str(final), "version": version, "seconds": round(seconds, 1), "size_mb": round(size / 1e6, 2)}
