"""One way to generate, score and translate, whether the model is an exported
SavedModel or a run directory. Language models go through the serving
functions of `LanguageModelModule` (loaded from disk, or built in-process
from the run's best weights); translators through the exported signature or
in-process `translate`, which decode the same way (tested equal). So the CLI
behaves the same either way.

It lives in kerasllm.export (not kerasllm.inference) because it builds on
the export's serving modules, which in turn build on kerasllm.inference: the
layers contract in setup.cfg keeps that order.

Example:
    lm = LanguageModelClient.open(model="saved_models/shakespeare")
    lm.generate(["ROMEO:"], max_new_tokens=50, temperature=0).texts
    for piece in stream(lm, "ROMEO:", 200, stop=["\\n\\n"]): print(piece, end="")
    TranslatorClient.open(model="saved_models/spa-eng").translate(["I like tea."], beams=4)
"""

from __future__ import annotations

import contextlib
import json
import random

import numpy as np
import tensorflow as tf

from kerasllm import task_registry
from kerasllm.errors import UserError, warn
from kerasllm.inference.generate import Generated, default_new_tokens, warn_truncated
from kerasllm.inference.windows import continue_rows, window_keep

STREAM_CHUNK = 16  # new tokens per call while streaming


def load_saved_model(path, kind: str):
    """(loaded SavedModel, its kerasllm.json) of a `kerasllm export` version
    (or the newest under a model directory), refusing another `kind`."""
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    from kerasllm.export.saved_model import META_FILE, resolve_model_dir

    directory = resolve_model_dir(path)
    meta_path = directory / "assets.extra" / META_FILE
    if not meta_path.is_file():
        raise UserError(f"--model {path}: {meta_path} is missing; was this exported by `kerasllm export`?")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != kind:
        owner = task_registry.for_serving_kind(meta.get("kind"))
        hint = f"; use `kerasllm {owner.commands[0]}`" if owner is not None and owner.commands else ""
        raise UserError(f"--model {path}: a {meta.get('kind')} model, not a {kind.replace('_', ' ')}{hint}")
    return tf.saved_model.load(str(directory)), meta


def _exactly_one(model, run) -> None:
    if (model is None) == (run is None):
        raise UserError("give exactly one of --model (an exported SavedModel) or --run (a run directory)")


class LanguageModelClient:
    """Generation and scoring through `LanguageModelModule`'s functions.

    Sampled generation runs on ids (`generate_ids`): prompts are tokenized
    once, ids are carried from call to call (`windows.continue_rows`), and
    text is decoded from all of them, so a stream is the one-shot text. A run
    (`slides`) continues past its context with a sliding window; an exported
    model generates at most its `max_new_tokens` (context - 1), as its
    serving signatures do.
    """

    def __init__(self, functions, meta: dict, trace_context=contextlib.nullcontext, slides: bool = False):
        self._f = functions
        self.meta = meta
        self.context = meta.get("context")
        self.max_new_tokens = meta["max_new_tokens"]  # per call
        self.beams = meta["beams"]
        self.slides = slides
        self._trace_context = trace_context
        self._said = set()  # warnings given: each once, however many batches a command sends

    def _warn(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            warn(message)

    @classmethod
    def open(cls, model: str | None = None, run: str | None = None, beams: int = 4,
             checkpoint: str | None = None) -> "LanguageModelClient":
        if checkpoint is not None:  # `kerasllm.tasks.open_client` has checked it is the only source
            from kerasllm.loaded_run import load_checkpoint

            return cls.from_loaded(load_checkpoint(checkpoint), beams)
        _exactly_one(model, run)
        if model is not None:
            return cls.from_saved_model(model)
        return cls.from_run(run, beams)

    @classmethod
    def from_saved_model(cls, path) -> "LanguageModelClient":
        loaded, meta = load_saved_model(path, "language_model")
        if not hasattr(loaded, "generate_ids") or "eot_id" not in meta:
            raise UserError(f"--model {path}: exported by an older kerasllm (no generate_ids signature); "
                            "export the run again with `kerasllm export`")
        return cls(loaded, meta)

    @classmethod
    def from_run(cls, run_dir, beams: int = 4) -> "LanguageModelClient":
        from kerasllm.loaded_run import load_run

        return cls.from_loaded(load_run(run_dir), beams)  # `kerasllm.tasks.open_client` has checked its task

    @classmethod
    def from_loaded(cls, lm, beams: int = 4) -> "LanguageModelClient":
        """The client of a loaded run or checkpoint (`LoadedRun`), in this process."""
        from kerasllm.export.language_model import LanguageModelModule
        from kerasllm.export.xla_free import no_xla_ops

        module = LanguageModelModule(lm.model, lm.preprocessor, beams=max(beams, 1))
        meta = {**module.meta(), "tokenizer": lm.tokenizer.kind}
        return cls(module, meta, trace_context=no_xla_ops, slides=True)

    # -- sampling -------------------------------------------------------------

    def generate(self, prompts: list[str], max_new_tokens: int | None = None, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int | None = None, beams: int = 1) -> Generated:
        """Continuations of `prompts` (text after each prompt, new-token counts)."""
        if beams > 1:
            return self._beam_search(prompts, max_new_tokens, beams)
        rows, max_new_tokens = self.prompt_rows(prompts, max_new_tokens)
        new = [[] for _ in rows]
        for new, _ in self.continue_ids(rows, max_new_tokens, seed, temperature=temperature, top_k=top_k, top_p=top_p):
            pass  # the last yield holds every row's ids
        return Generated(self.continuations(rows, new), [len(n) for n in new])

    def new_tokens(self, max_new_tokens: int | None, sliding: bool) -> int:
        """New tokens for a request: None means `default_new_tokens`; without
        a sliding window, the most one call makes, said in one line when the
        request asks for more."""
        if max_new_tokens is None:
            return default_new_tokens(self.context)
        if sliding or max_new_tokens <= self.max_new_tokens:
            return max_new_tokens
        limit = self.max_new_tokens
        why = (f"the model's context is {self.context} tokens" if self.context else "the most a model without a "
               "context generates at once")
        where = ("" if not self.context else "; beam search does not slide past it" if self.slides
                 else "; `kerasllm generate --run` continues past the context")
        self._warn(f"max_new_tokens={max_new_tokens} lowered to {limit}: {why}{where}")
        return limit

    def prompt_rows(self, prompts: list[str], max_new_tokens: int | None, sliding: bool | None = None):
        """(ids of each prompt led by the start token (end-of-text but for
        some pretrained families), new tokens
        to generate). Without a sliding window each prompt is cut from the
        left to fit the context with the new tokens, as the serving
        signatures cut it; with one, the model starts from a prompt's last
        `window_keep` ids when it does not fit. Each cut is one warning line."""
        sliding = self.slides if sliding is None else sliding
        max_new_tokens = self.new_tokens(max_new_tokens, sliding)
        out = self.tokenize(prompts)
        start = self.meta.get("start_id", self.meta["eot_id"])  # exports before pretrained families had no start_id
        rows = [[start] + ids[:n].tolist() for ids, n in zip(out["token_ids"], out["num_tokens"])]
        if self.context is None:
            return rows, max_new_tokens
        if sliding:
            kept = [len(r) if len(r) < self.context else window_keep(self.context) for r in rows]
        else:
            kept = [min(len(r), self.context - max_new_tokens) for r in rows]
        warn_truncated([len(r) for r in rows], kept, self.context, say=self._warn)
        return (rows if sliding else [r[len(r) - k:] for r, k in zip(rows, kept)]), max_new_tokens

    def continue_ids(self, rows: list, max_new_tokens: int, seed: int | None = None, chunk: int | None = None,
                     **settings):
        """Yields (new ids of each row so far, whether each row ended) after
        each call of at most `chunk` (default: as many as one call may make)
        new tokens; every call draws with the same seed (a random one if None)."""
        if seed is None:
            seed = random.SystemRandom().randrange(2**31 - 1)
        per_call = min(chunk or self.max_new_tokens, self.max_new_tokens)

        def call(windows, n):
            return self._generate_ids(windows, n, seed, **settings)

        yield from continue_rows(call, rows, max_new_tokens, self.context, self.slides, per_call)

    def _generate_ids(self, windows: list, n: int, seed: int, temperature=1.0, top_k=0, top_p=1.0) -> list:
        width = max(len(w) for w in windows)
        ids = np.array([w + [0] * (width - len(w)) for w in windows], np.int32)
        with self._trace_context():
            out = self._f.generate_ids(
                tf.constant(ids), tf.constant([len(w) for w in windows], tf.int32), max_new_tokens=tf.constant(n, tf.int32),
                temperature=tf.constant(temperature, tf.float32), top_k=tf.constant(top_k, tf.int32),
                top_p=tf.constant(top_p, tf.float32), seed=tf.constant(seed, tf.int32))
        return [row[:count].tolist() for row, count in zip(out["token_ids"].numpy(), out["num_tokens"].numpy())]

    def continuations(self, rows: list, new: list) -> list[str]:
        """The text each row's `new` ids add to its prompt `rows`. Prompt and
        continuation are detokenized together (a subword tokenizer joins
        pieces across the boundary) and the prompt's text cut off the front,
        as `decode_continuations` does in the serving graph."""
        full = self.detokenize_rows([r + n for r, n in zip(rows, new)])
        prompts = self.detokenize_rows(rows)
        return [f[len(p):] if f.startswith(p) else f for f, p in zip(full, prompts)]

    def _beam_search(self, prompts: list[str], max_new_tokens: int | None, beams: int) -> Generated:
        if beams != self.beams:
            raise UserError(f"--beams {beams}: this model was exported for beam search with {self.beams} "
                            f"beams; use --beams {self.beams} or re-export with `kerasllm export --beam-search-width {beams}`")
        _, max_new_tokens = self.prompt_rows(prompts, max_new_tokens, sliding=False)  # says the graph's cuts
        with self._trace_context():
            out = self._f.beam_search(tf.constant(prompts, tf.string), max_new_tokens=tf.constant(max_new_tokens))
        return Generated(_texts(out["text"]), out["num_tokens"].numpy().tolist())

    # -- text -----------------------------------------------------------------

    def warn_unknown_characters(self, texts: list[str]) -> None:
        """One warning line naming the characters of `texts` a character-level
        model has no id for (they read as <unk>)."""
        from kerasllm.data.tokenizers import CharTokenizer, unknown_characters, unknown_characters_message

        if self.meta.get("tokenizer") != "char":
            return
        found = unknown_characters(texts, self._token_lists, CharTokenizer.unk_id)
        if found:
            self._warn(unknown_characters_message(found))

    def _token_lists(self, texts: list[str]) -> list:
        out = self.tokenize(texts)
        return [ids[:n].tolist() for ids, n in zip(out["token_ids"], out["num_tokens"])]

    def detokenize_rows(self, rows: list) -> list[str]:
        """Text of id lists (end-of-text ids drop out)."""
        width = max(len(r) for r in rows)
        eot = self.meta["eot_id"]  # padding that drops out, whatever the pad id
        return self.detokenize([r + [eot] * (width - len(r)) for r in rows])

    def detokenize(self, token_ids) -> list[str]:
        with self._trace_context():
            out = self._f.detokenize(tf.constant(token_ids, tf.int32))
        return _texts(out["text"])

    def score(self, texts: list[str]) -> dict:
        with self._trace_context():
            out = self._f.score(tf.constant(texts, tf.string))
        return {k: v.numpy() for k, v in out.items()}

    def tokenize(self, texts: list[str]) -> dict:
        with self._trace_context():
            out = self._f.tokenize(tf.constant(texts, tf.string))
        return {k: v.numpy() for k, v in out.items()}


def _texts(strings) -> list[str]:
    return [t.decode("utf-8", errors="replace") for t in strings.numpy()]


class TranslatorClient:
    """Translation from an exported translator (its serving_default) or from
    a run's best weights (in-process `translate`): the same decoding."""

    def __init__(self, translate_batch, max_length: int, source_tokenizer=None):
        self._translate = translate_batch
        self.max_length = max_length
        # A run's source tokenizer names the characters it has no id for; an
        # exported translator has no tokenize signature to ask.
        self._source_tokenizer = source_tokenizer
        self._named = set()

    @classmethod
    def open(cls, model: str | None = None, run: str | None = None) -> "TranslatorClient":
        _exactly_one(model, run)
        if model is not None:
            loaded, meta = load_saved_model(model, "translator")
            signature = loaded.signatures["serving_default"]

            def translate_batch(sentences, beams, length_penalty, max_length):
                out = signature(sources=tf.constant(sentences, tf.string), beams=tf.constant(beams, tf.int32),
                                length_penalty=tf.constant(length_penalty, tf.float32),
                                max_length=tf.constant(max_length, tf.int32))
                return [t.decode("utf-8", errors="replace") for t in out["translations"].numpy()]

            return cls(translate_batch, meta["max_length"])
        from kerasllm.loaded_run import load_run

        return cls.from_loaded(load_run(run))  # `kerasllm.tasks.open_client` has checked it is a translation run

    @classmethod
    def from_loaded(cls, lm) -> "TranslatorClient":
        """The client of a loaded run or checkpoint (`LoadedRun`), in this process."""
        from kerasllm.inference.translate import translate

        def translate_batch(sentences, beams, length_penalty, max_length):
            return translate(lm.model, lm.tokenizer, lm.target_tokenizer, sentences, max_length, beams, length_penalty,
                             preprocessor=lm.preprocessor)

        return cls(translate_batch, lm.config.model.seq_len, lm.tokenizer)

    def translate(self, sentences: list[str], beams: int = 1, length_penalty: float = 0.6,
                  max_length: int | None = None) -> list[str]:
        self._warn_unknown_characters(sentences)
        return self._translate(sentences, beams, length_penalty, max_length or self.max_length)

    def _warn_unknown_characters(self, sentences: list[str]) -> None:
        """One warning line naming source characters read as <unk> (each
        character named once per client, however many batches)."""
        from kerasllm.data.tokenizers import unknown_characters_message

        if self._source_tokenizer is None:
            return
        found = [c for c in self._source_tokenizer.unknown_characters(sentences) if c not in self._named]
        if found:
            self._named.update(found)
            warn(unknown_characters_message(found))


class QuestionAnsweringClient:
    """Answers from an exported question answerer (its serving_default) or
    from a run's best weights (in-process): the same graph."""

    def __init__(self, answer, keep=None):
        self._answer = answer
        self._keep = keep  # the loaded SavedModel must outlive its functions

    @classmethod
    def open(cls, model: str | None = None, run: str | None = None) -> "QuestionAnsweringClient":
        _exactly_one(model, run)
        if model is not None:
            loaded, _ = load_saved_model(model, "question_answering")
            signature = loaded.signatures["serving_default"]
            return cls(lambda q, c: signature(question=q, context=c), keep=loaded)
        from kerasllm.loaded_run import load_run
        from kerasllm.inference.qa import answer_fn

        lm = load_run(run)  # `kerasllm.tasks.open_client` has checked it is a question-answering run
        return cls(answer_fn(lm.model, lm.tokenizer, lm.config.model))

    def answer(self, questions: list[str], contexts: list[str]) -> list[dict]:
        from kerasllm.inference.qa import answer_questions

        return answer_questions(self._answer, questions, contexts)


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """`text` up to the first stop string (excluded), and whether one occurred."""
    found = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(found)], True) if found else (text, False)


def stream(client: LanguageModelClient, prompt: str, max_new_tokens: int | None, stop: list[str] = (),
           seed: int | None = None, chunk: int = STREAM_CHUNK, **settings):
    """Yields the continuation of one prompt piece by piece, `chunk` tokens
    per call; ends at end-of-text, `max_new_tokens` or a stop string.

    The pieces join to `client.generate([prompt], ...)`'s text with the
    same seed, cut at the first stop string: ids are carried from call to
    call (the prompt is tokenized and cut once), the text so far is decoded
    from all of them, and a piece is shown only once later ids cannot change
    it: text that could begin a stop string, and trailing U+FFFD (bytes of
    a character not complete yet), wait."""
    stop = [s for s in stop if s]
    hold = max((len(s) for s in stop), default=1) - 1
    rows, max_new_tokens = client.prompt_rows([prompt], max_new_tokens)
    shown = 0
    for new, ended in client.continue_ids(rows, max_new_tokens, seed, chunk=chunk, **settings):
        text = client.continuations(rows, new)[0]
        done = ended[0] or len(new[0]) >= max_new_tokens
        settled = text if done else text.rstrip("\ufffd")
        kept, stopped = cut_at_stop(settled, stop)
        if stopped or done:
            yield kept[shown:]
            return
        safe = max(len(settled) - hold, shown)
        yield settled[shown:safe]
        shown = safe
