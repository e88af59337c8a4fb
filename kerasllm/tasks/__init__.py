"""Tasks: each kind of run kerasllm trains, behind one contract (`Task`).

Importing this package registers the built-in tasks in
`kerasllm.task_registry` (importing `kerasllm` does it):

| model.kind | model.head | task                     | module                |
|------------|------------|--------------------------|-----------------------|
| gpt, lstm  |            | language model           | `language_model`      |
| seq2seq    |            | translation              | `translation`         |
| encoder    | masked_lm  | masked-LM pretraining    | `masked_lm`           |
| encoder    | span       | extractive QA            | `question_answering`  |
| gpt2, llama3 |   | pretrained language model | `pretrained_language_model` |
| bert, distilbert | | extractive QA on a pretrained encoder | `pretrained_question_answering` |
| bart |      | translation from a pretrained encoder-decoder | `pretrained_translation` |

A new task is one object that implements `Task`, registered with
`register` (docs/extending.md). The helpers here are what the CLI asks
before and after TensorFlow loads: the task of a run directory, and the
client a command uses.

Example:
    from kerasllm import tasks

    task = tasks.for_run("runs/spa-eng")          # reads config.yaml only
    client = tasks.open_client("translate", run="runs/spa-eng")
    client.translate(["I like tea."])
"""

from __future__ import annotations

import json
import os

from kerasllm import pretrained, task_registry
from kerasllm.config import FINETUNE_KEYS
from kerasllm.errors import UserError
from kerasllm.models import build_gpt, build_lstm
from kerasllm.tasks.base import Task, Training
from kerasllm.tasks.language_model import TRANSFORMER_KEYS, LanguageModel
from kerasllm.tasks.masked_lm import MaskedLM
from kerasllm.tasks.pretrained_language_model import PretrainedLanguageModel
from kerasllm.tasks.pretrained_question_answering import PretrainedQuestionAnswering
from kerasllm.tasks.pretrained_translation import PretrainedTranslation
from kerasllm.tasks.question_answering import QuestionAnswering
from kerasllm.tasks.translation import Translation

__all__ = ["Task", "Training", "register", "get", "for_run", "for_config", "open_client", "build_model"]

register = task_registry.register
get = task_registry.get

register(LanguageModel("gpt", build_gpt, TRANSFORMER_KEYS + FINETUNE_KEYS + ("model.tie_embeddings",),
                       transformer=True), replace=True)
register(LanguageModel("lstm", build_lstm, ("model.embedding_dim",), transformer=False), replace=True)
register(Translation(), replace=True)
register(MaskedLM(), replace=True)
register(QuestionAnswering(), replace=True)
# Each pretrained family is one task, by what kerasllm does with it (`Family.role`).
_PRETRAINED_TASKS = {"causal_lm": PretrainedLanguageModel, "span": PretrainedQuestionAnswering,
                     "seq2seq": PretrainedTranslation}
for _family in pretrained.FAMILIES.values():
    register(_PRETRAINED_TASKS[_family.role](_family), replace=True)


def for_config(config) -> Task:
    """The task of a `RunConfig`."""
    return task_registry.for_model(config.model)


def for_run(run_dir: str) -> Task:
    """The task of a run directory, read from its config.yaml (no TensorFlow).

    Raises:
        UserError: not a run directory.
    """
    from kerasllm import config as config_lib
    from kerasllm.run_dir import RunDir

    path = RunDir(run_dir).config
    if not path.is_file():
        raise UserError(f"--run {run_dir}: not a run directory (no config.yaml); train one with `kerasllm train`")
    return for_config(config_lib.load(path))


def build_model(model_config, vocabulary_size: int, dtype=None):
    """The model of a single-vocabulary task (language models, encoders)
    for a `ModelConfig`, by its registered task's `build`.

    Example:
        build_model(ModelConfig(kind="lstm"), 100)  # an LSTMCausalLM
    """
    return task_registry.for_model(model_config).build(model_config, vocabulary_size, dtype)


def _command_task(command: str) -> Task:
    """The task whose models `command` uses (the first that lists it)."""
    return next(t for t in task_registry.all_tasks() if command in t.commands)


def _export_kind(model_dir: str) -> str | None:
    """The `kind` in an export's kerasllm.json, read without TensorFlow (None
    where it cannot be read: loading the model then says why)."""
    from kerasllm.export.saved_model import META_FILE, resolve_model_dir

    try:
        with open(os.path.join(resolve_model_dir(model_dir), "assets.extra", META_FILE), encoding="utf-8") as f:
            return json.load(f).get("kind")
    except (OSError, ValueError, UserError, AttributeError):
        return None


def open_client(command: str, model: str | None = None, run: str | None = None, checkpoint: str | None = None,
                **options):
    """The client `command` uses on an exported model (`model`), a run
    directory (`run`) or a pretrained checkpoint (`checkpoint`), from the
    task that serves it; a model of another task is refused in one line
    naming the command that uses it.

    Args:
        command: a CLI command: generate, score, translate, qa.
        model, run, checkpoint: exactly one of them.
        **options: the client's options (e.g. `beams` for a language model).

    Example:
        open_client("generate", run="runs/tiny").generate(["ROMEO:"], 20).texts
    """
    if sum(source is not None for source in (model, run, checkpoint)) != 1:
        raise UserError("give exactly one of --model (an exported SavedModel), --run (a run directory) or "
                        "--checkpoint (a pretrained checkpoint)")
    if checkpoint is not None:
        task = task_registry.get(pretrained.inspect(checkpoint, "--checkpoint").family.kind)
        if command not in task.commands:
            raise UserError(f"--checkpoint {checkpoint}: {task.refuse(command, checkpoint)}")
        return task.open_client(command, checkpoint=checkpoint, **options)
    if run is not None:
        task = for_run(run)
        if command not in task.commands:
            raise UserError(f"--run {run}: {task.refuse(command, run)}")
        return task.open_client(command, run=run, **options)
    wanted = _command_task(command)
    found = task_registry.for_serving_kind(_export_kind(model)) or wanted
    if command not in found.commands:
        raise UserError(f"--model {model}: a {found.serving_kind} model, not a "
                        f"{wanted.serving_kind.replace('_', ' ')}; use `kerasllm {found.commands[0]}`")
    return found.open_client(command, model=model, **options)
