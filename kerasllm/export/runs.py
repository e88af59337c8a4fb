"""`kerasllm export`: a trained run -> a servable version (a language model,
a translator or a question answerer), with warmup requests that cover every
signature."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kerasllm import progress, task_registry
from kerasllm.export.keras_hub_preset import PRESET_DIR, check_presettable, write_preset
from kerasllm.export.language_model import LanguageModelModule
from kerasllm.export.merge import merge_lora
from kerasllm.export.question_answering import QuestionAnsweringModule
from kerasllm.export.saved_model import write_version
from kerasllm.export.translator import TranslatorModule
from kerasllm.loaded_run import load_checkpoint, load_run
from kerasllm.run_dir import RunDir


def export_run(run_dir: str | None, name: str | None = None, base_dir: str = "saved_models",
               version: int | None = None, beams: int = 4, length_penalty: float = 0.6,
               checkpoint: str | None = None, keras_hub_preset: bool = False) -> dict:
    """Writes a run's best weights, or a pretrained checkpoint as it is, as
    a TF Serving version, in the shape its task serves (`Task.export`): the
    next free version under `base_dir/name` unless `version` is given.

    Args:
        run_dir: a run directory from `kerasllm train`, or None with `checkpoint`.
        name: the model's directory under `base_dir` (default: the run's
            config name, or the checkpoint directory's name).
        base_dir: where model directories live (TF Serving's base path is base_dir/name).
        version: the version number (default: the next free one).
        beams: a language model's beam_search width; a translator's default beam width.
        length_penalty: a translator's default length penalty.
        checkpoint: instead of a run, a Hugging Face directory, keras-hub
            preset or hf:// / kaggle:// handle (`kerasllm export
            --checkpoint`): a Hugging Face GPT-2 served with its own
            tokenizer inside, for example.
        keras_hub_preset: also write the model as a keras-hub preset in
            `<base_dir>/<name>/keras-hub/` (`kerasllm.export.keras_hub_preset`).

    Example:
        export_run("runs/tiny", name="tiny")["path"]  # "saved_models/tiny/1"
        export_run(None, name="gpt2", checkpoint="checkpoints/gpt2")["path"]  # "saved_models/gpt2/1"
    """
    with progress.phase("export: loading the " + ("checkpoint" if checkpoint else "run")):
        # A LoRA run's adapters become plain weights.
        lm = load_checkpoint(checkpoint) if checkpoint else merge_lora(load_run(run_dir), run_dir)
    if keras_hub_preset:
        check_presettable(lm)
    task = task_registry.for_model(lm.config.model)
    summary = task.export(lm, None if checkpoint else run_dir, name, base_dir, version, beams, length_penalty)
    if keras_hub_preset:
        with progress.phase("export: writing the keras-hub preset"):
            summary["keras_hub_preset"] = write_preset(lm, Path(summary["path"]).parent / PRESET_DIR)
    return summary


def export_language_model(lm, run_dir: str | None, name, base_dir: str, version, beams: int) -> dict:
    """A loaded language-model run (`LoadedRun`) as a version with the
    generate, generate_ids, beam_search (width `beams`), score, tokenize
    and detokenize signatures (`LanguageModelModule`) and their warmup."""
    module = LanguageModelModule(lm.model, lm.preprocessor, beams=beams)
    prompt = lm.config.train.sample_prompt or "The"
    new = np.int32(min(8, module.max_new_tokens))
    strings = np.array([prompt, ""], dtype=object)
    warmup = [
        ("serving_default", {"prompts": strings, "max_new_tokens": new, "temperature": np.float32(0.0)}),
        ("serving_default", {"prompts": strings[:1], "max_new_tokens": new, "top_p": np.float32(0.9), "seed": np.int32(0)}),
        ("generate_ids", {"token_ids": np.array([[lm.tokenizer.start_id, 0]], dtype=np.int32),
                          "num_tokens": np.array([1], dtype=np.int32), "max_new_tokens": new}),
        ("beam_search", {"prompts": strings[:1], "max_new_tokens": new}),
        ("score", {"texts": strings}),
        ("tokenize", {"texts": strings}),
        ("detokenize", {"token_ids": np.array([[lm.tokenizer.eot_id]], dtype=np.int32)}),
    ]
    meta = {
        "kind": "language_model",
        **provenance(lm.config, run_dir),
        "model": lm.config.model.kind,
        "tokenizer": lm.tokenizer.kind,
        "vocabulary_size": lm.tokenizer.vocabulary_size,
        **module.meta(),  # context, max_new_tokens (the most one request generates), beams, eot_id
    }
    return write_version(module, base_dir, name or lm.config.name, version, warmup, meta)


def kerasllm_version() -> str:
    """The installed kerasllm's version (its package metadata)."""
    from importlib import metadata

    try:
        return metadata.version("kerasllm")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        from kerasllm.version import __version__

        return __version__


def provenance(config, run_dir: str) -> dict:
    """Where an export's weights come from, for its kerasllm.json: the run
    (absolute path), the training step of the weights exported (optimizer
    steps, as `train` counts them), the run's best validation loss (None
    before any validation), a hash of the run's identity config
    (`config.identity_hash`) and the kerasllm version that exported it.

    A checkpoint exported as it is (`run_dir` None) records the
    checkpoint instead of the run, step and loss.

    Args:
        config: the run's `RunConfig` (as `load_run` read it).
        run_dir: the run directory, as given (a relative path is made
            absolute), or None for a checkpoint (`config.train.init_from`).

    Example:
        provenance(load_run("runs/tiny").config, "runs/tiny")["step"]  # 40
    """
    from kerasllm import config as config_lib

    if run_dir is None:
        from kerasllm import pretrained

        source = config.train.init_from
        return {"checkpoint": source if pretrained.is_handle(source) else str(Path(source).expanduser().resolve()),
                "config_hash": config_lib.identity_hash(config), "kerasllm_version": kerasllm_version()}

    run = RunDir(run_dir)
    state = run.load_state()  # the newest checkpoint's: it is saved right after the best weights
    exported = run.inference_weights()
    batches = state.best_step if exported == run.best_weights else state.step
    return {
        "run": str(Path(run_dir).resolve()),
        "step": max(batches, 0) // config.train.grad_accum_steps,
        "best_val_loss": state.best_val_loss if math.isfinite(state.best_val_loss) else None,
        "config_hash": config_lib.identity_hash(config),
        "kerasllm_version": kerasllm_version(),
    }


def export_translator(lm, run_dir: str, name, base_dir: str, version, beams: int, length_penalty: float) -> dict:
    """A loaded translation run as a version with a `sources -> translations`
    signature (`TranslatorModule`; `beams` and `length_penalty` are its
    inputs' defaults) and its warmup."""
    module = TranslatorModule(lm.model, lm.preprocessor, beams, length_penalty)
    max_length = module.max_length  # the model's seq_len
    sources = np.array(["Hello, how are you?", ""], dtype=object)
    warmup = [
        ("serving_default", {"sources": sources}),
        ("serving_default", {"sources": sources[:1], "beams": np.int32(1)}),
        ("serving_default", {"sources": sources, "beams": np.int32(2), "length_penalty": np.float32(1.0),
                             "max_length": np.int32(min(8, max_length))}),
    ]
    meta = {
        "kind": "translator",
        **provenance(lm.config, run_dir),
        "model": lm.config.model.kind,
        "tokenizer": lm.tokenizer.kind,
        "shared_vocabulary": lm.target_tokenizer is lm.tokenizer,
        "max_length": max_length,
        "beams": beams,
        "length_penalty": length_penalty,
    }
    return write_version(module, base_dir, name or lm.config.name, version, warmup, meta)


def export_question_answering(lm, run_dir: str, name, base_dir: str, version) -> dict:
    """A loaded question-answering run as a version with a `question,
    context -> answer` signature (`QuestionAnsweringModule`) and its warmup."""
    module = QuestionAnsweringModule(lm.model, lm.preprocessor)
    context = "Hamlet is a tragedy written by William Shakespeare around 1600."
    warmup = [
        ("serving_default", {"question": np.array(["Who wrote Hamlet?"], dtype=object),
                             "context": np.array([context], dtype=object)}),
        ("serving_default", {"question": np.array(["When was it written?", "What is Hamlet?"], dtype=object),
                             "context": np.array([context, context * 20], dtype=object)}),
    ]
    meta = {
        "kind": "question_answering",
        **provenance(lm.config, run_dir),
        "model": "encoder",
        "tokenizer": lm.tokenizer.kind,
        "seq_len": lm.config.model.seq_len,
        "doc_stride": lm.config.model.doc_stride,
        "max_answer_tokens": lm.config.model.max_answer_tokens,
    }
    return write_version(module, base_dir, name or lm.config.name, version, warmup, meta)
