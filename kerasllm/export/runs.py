"""`kerasllm export`: a trained run -> a servable language-model version."""

from __future__ import annotations

import numpy as np

from kerasllm.export.language_model import LanguageModelModule
from kerasllm.export.saved_model import write_version
from kerasllm.inference.generate import load_run


def export_run(run_dir: str, name: str | None = None, base_dir: str = "saved_models",
               version: int | None = None, beams: int = 4) -> dict:
    lm = load_run(run_dir)
    if lm.config.model.kind == "seq2seq":
        from kerasllm.errors import UserError

        raise UserError(f"--run {run_dir}: exporting translation models is not built yet; "
                        "translate in-process with `kerasllm translate --run`")
    module = LanguageModelModule(lm.model, lm.tokenizer, beams=beams)
    prompt = lm.config.train.sample_prompt or "The"
    new = np.int32(min(8, module.max_new_tokens))
    strings = np.array([prompt, ""], dtype=object)
    warmup = [
        ("serving_default", {"prompts": strings, "max_new_tokens": new, "temperature": np.float32(0.0)}),
        ("serving_default", {"prompts": strings[:1], "max_new_tokens": new, "top_p": np.float32(0.9), "seed": np.int32(0)}),
        ("beam_search", {"prompts": strings[:1], "max_new_tokens": new}),
        ("score", {"texts": strings}),
        ("tokenize", {"texts": strings}),
        ("detokenize", {"token_ids": np.array([[lm.tokenizer.eot_id]], dtype=np.int32)}),
    ]
    meta = {
        "kind": "language_model",
        "run": str(run_dir),
        "model": lm.config.model.kind,
        "tokenizer": lm.tokenizer.kind,
        "vocabulary_size": lm.tokenizer.vocabulary_size,
        "context": module.context,
        "max_new_tokens": module.max_new_tokens,
        "beams": beams,
    }
    return write_version(module, base_dir, name or lm.config.name, version, warmup, meta)
