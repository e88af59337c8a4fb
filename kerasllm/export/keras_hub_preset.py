"""`kerasllm export --format keras-hub`: a trained model as a keras-hub
preset directory (keras-hub's own `save_to_preset`), which loads back with
`keras_hub.models.CausalLM.from_preset(DIR)` (or the family's class,
`keras_hub.models.GPT2CausalLM`) outside kerasllm.

A pretrained family's run (`kerasllm.models.hub.HubCausalLM`) is saved as
the keras-hub task it wraps, with the family's preprocessor and the run's
tokenizer: keras-hub alone loads it, and `generate("text")` works on it.
kerasllm's own architectures (GPT, translator, encoders) are keras-hub
tasks too, registered under the `kerasllm>` prefix: loading them needs
`import kerasllm` first, and their tokenizer, which is not a keras-hub
layer, is saved beside them in `kerasllm_tokenizer/`
(`kerasllm.data.tokenizers.load_tokenizer`).

Example:
    write_preset(load_run("runs/gpt2-poems"), "saved_models/gpt2-poems/keras-hub")
    keras_hub.models.CausalLM.from_preset("saved_models/gpt2-poems/keras-hub").generate("ROMEO:")
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kerasllm.errors import UserError
from kerasllm.files import temporary_sibling

PRESET_DIR = "keras-hub"  # inside the model's directory; TF Serving reads only numbered version directories
OWN_TOKENIZER_DIR = "kerasllm_tokenizer"


def check_presettable(loaded) -> None:
    """Raises a `UserError` for a model that is not a keras-hub task with a
    backbone (an LSTM, a question answerer's span model), before anything
    is written."""
    if not hasattr(loaded.model, "save_to_preset") or getattr(loaded.model, "backbone", None) is None:
        raise UserError(f"--format keras-hub: a {loaded.config.model.kind} model has no keras-hub backbone to save; "
                        "export it for TF Serving (the default format)")


def write_preset(loaded, directory) -> str:
    """Saves a loaded run's model (and tokenizer) as a keras-hub preset at
    `directory`, replacing an older one there only once the new one is
    complete. Returns the directory.

    Args:
        loaded: a `kerasllm.loaded_run.LoadedRun`.
        directory: the preset directory to write.

    Raises:
        UserError: the model is not a keras-hub task with a backbone (an
            LSTM, a question answerer's span model).
    """
    from kerasllm.models.hub import HubCausalLM

    check_presettable(loaded)
    model, directory = loaded.model, Path(directory)
    staging = temporary_sibling(directory)
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(model, HubCausalLM):
            inner = model.inner
            preprocessor = inner.preprocessor_cls(tokenizer=loaded.tokenizer.layer, sequence_length=model.context)
            type(inner)(backbone=inner.backbone, preprocessor=preprocessor).save_to_preset(str(staging))
        else:
            model.save_to_preset(str(staging))
            loaded.tokenizer.save(staging / OWN_TOKENIZER_DIR)
            if loaded.target_tokenizer is not None and loaded.target_tokenizer is not loaded.tokenizer:
                loaded.target_tokenizer.save(staging / (OWN_TOKENIZER_DIR + "_target"))
        old = directory.with_name(f".old-{os.getpid()}-{directory.name}")
        if directory.exists():
            os.rename(directory, old)
        os.rename(staging, directory)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(directory)
