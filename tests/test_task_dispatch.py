"""The run's kind is decided in one place, the task registry: no module
outside kerasllm/tasks/ (and the registry itself) branches on
`model.kind` or `model.head`, so a new task needs no edit elsewhere."""

import re

from conftest import ROOT

# A comparison with a model kind or head name, or with model.kind/model.head.
DISPATCH = re.compile(
    r"""(\bmodel\.(kind|head)\s*(==|!=|\bin\b|\bnot in\b))"""
    r"""|(\b(kind|head)\s*(==|!=|\bin\b|\bnot in\b)\s*\(?\s*["'](gpt|lstm|seq2seq|encoder|span|masked_lm)["'])"""
)
ALLOWED = {ROOT / "kerasllm" / "task_registry.py"}


def _sources():
    for folder in ("kerasllm", "cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in ALLOWED or (ROOT / "kerasllm" / "tasks") in path.parents:
                continue
            yield path


def test_no_module_outside_the_registry_branches_on_the_model_kind():
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in _sources()
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if DISPATCH.search(line)]
    assert not found, "\n".join(found)


def test_the_check_finds_a_dispatch():
    assert DISPATCH.search('    if config.model.kind == "seq2seq":')
    assert DISPATCH.search('    elif kind in ("gpt", "lstm"):')
    assert DISPATCH.search("    if lm.config.model.head != 'span':")
    assert not DISPATCH.search('    if config.kind == "byte":')  # a tokenizer's kind is not a task
