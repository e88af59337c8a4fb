"""The one registry of tasks, keyed by (model.kind, model.head).

Why it sits at the bottom of the import layers while the tasks themselves
(`kerasllm.tasks`) sit at the top: config validation, the trainer, loading
a run, evaluation and export all need to ask "which task is this run?",
and none of them may import the layer above. So the registry holds task
*objects*; `kerasllm.tasks` registers the built-in ones when `kerasllm` is
imported (its `__init__` imports `kerasllm.tasks`), and a user's own task
registers itself the same way. The modules below only ever call methods of
a registered object (dependency inversion), never import a task module.

A kind either has no heads (`gpt`, `lstm`, `seq2seq`: registered with
`head=None`, and `model.head` is ignored for it) or one task per head
(`encoder`: `span`, `masked_lm`).

Example:
    from kerasllm import task_registry

    task = task_registry.for_model(config.model)   # the run's Task
    task.evaluate("runs/tiny", None, "validation")
    task_registry.kinds()                          # ("gpt", "lstm", "seq2seq", "encoder")
"""

from __future__ import annotations

from kerasllm.errors import UserError

# (kind, head or None) -> task, in registration order.
_TASKS: dict = {}


def register(task, replace: bool = False):
    """Adds `task` under (task.kind, task.head) and returns it.

    Args:
        task: an object implementing `kerasllm.tasks.Task`.
        replace: replace a task already registered under the same key
            (otherwise that is an error: two modules claiming one kind).

    Raises:
        ValueError: the key is taken, or the kind mixes headless and headed tasks.

    Example:
        register(MyClassifierTask())  # model.kind: classifier is now valid
    """
    key = (task.kind, task.head)
    if key in _TASKS and not replace:
        raise ValueError(f"a task is already registered for model.kind {task.kind!r}, head {task.head!r}")
    others = [h for k, h in _TASKS if k == task.kind and (k, h) != key]
    if others and (task.head is None) != (others[0] is None):
        raise ValueError(f"model.kind {task.kind!r}: tasks of one kind either all have a head or none has")
    _TASKS[key] = task
    return task


def unregister(kind: str, head: str | None = None) -> None:
    """Removes a task (tests register throwaway tasks and remove them)."""
    _TASKS.pop((kind, head), None)


def kinds() -> tuple:
    """Every registered model.kind, in registration order."""
    return tuple(dict.fromkeys(kind for kind, _ in _TASKS))


def heads(kind: str) -> tuple:
    """The heads registered for `kind` (empty for a headless kind)."""
    return tuple(head for k, head in _TASKS if k == kind and head is not None)


def all_tasks() -> tuple:
    """Every registered task, in registration order."""
    return tuple(_TASKS.values())


def get(kind: str, head: str | None = None):
    """The task for `kind` (and `head`, for a kind with heads).

    Raises:
        UserError: no such kind or head, naming the registered ones.
    """
    if kind not in kinds():
        raise UserError(f"model.kind must be one of {', '.join(kinds())}, got {kind!r}")
    if not heads(kind):
        return _TASKS[(kind, None)]
    if (kind, head) not in _TASKS:
        raise UserError(f"model.head must be one of {', '.join(heads(kind))}, got {head!r}")
    return _TASKS[(kind, head)]


def for_model(model):
    """The task of a `ModelConfig` (or a dict of its values, as a saved
    config.yaml holds them; missing keys take the dataclass defaults of
    `kind: gpt` and `head: span`)."""
    values = model if isinstance(model, dict) else vars(model)
    return get(values.get("kind", "gpt"), values.get("head", "span"))


def for_serving_kind(serving_kind: str):
    """The task whose exports have this `kind` in their kerasllm.json, or None."""
    if serving_kind is None:  # tasks with nothing to serve have None too
        return None
    return next((t for t in _TASKS.values() if t.serving_kind == serving_kind), None)


def name(task) -> str:
    """A task's short name: its kind, with its head when the kind has heads
    (`gpt`, `seq2seq`, `encoder/span`)."""
    return f"{task.kind}/{task.head}" if task.head is not None else task.kind


def kind_specific_keys() -> set:
    """The config keys that only some tasks read: the union of every
    registered task's `config_keys`. Every other key applies to all tasks."""
    return {key for task in _TASKS.values() for key in task.config_keys}
