"""What an encoder run trains: masked-LM pretraining or question answering.

Both plug into the same trainer as the language model and translation
tasks. `MaskedLMTask` is the language model's text pipeline (packed blocks,
resumable) with each block framed as `[CLS] block [SEP]` and masked by its
`MaskedLMPreprocessor` (keras-hub's `MaskedLMMaskGenerator`: 15% of tokens
by default; 80% of those become [MASK], 10% a random token, 10% stay).
`QuestionAnsweringTask` reads SQuAD-format data (`qa_data`) into windows
with its `QuestionAnsweringPreprocessor` and trains the span head; with
`train.init_from` it starts from a pretraining run's tokenizer and encoder.
"""

from __future__ import annotations

import json
import random

import keras
import numpy as np
import tensorflow as tf

from kerasllm import task_registry
from kerasllm.compat import in_multi_worker_mode
from kerasllm.config import RunConfig
from kerasllm.errors import UserError
from kerasllm.files import atomic_write_text
from kerasllm.run_dir import RunDir
from kerasllm.training.init_from import init_run, take_tokenizers
from kerasllm.training.tasks import LanguageModelTask


class MaskedLMTask(LanguageModelTask):
    """Pretraining: predict masked tokens of packed text blocks."""

    block_len_offset = -3  # blocks of block_len + 1 = seq_len - 2 tokens, framed by [CLS] and [SEP]
    weighted_metrics = True  # only the masked positions count
    random_validation_examples = True  # masks: drawn once, so validations compare
    epoch_metrics = ("loss", "accuracy")  # of the masked tokens

    def __init__(self, config: RunConfig, run: RunDir, data_dir=None):
        take_tokenizers(config, run)
        # The task's preprocessor (`MaskedLMPreprocessor`) frames and masks the blocks.
        super().__init__(config, run, data_dir)

    @property
    def cls_id(self) -> int:
        return self.preprocessor.cls_id

    @property
    def sep_id(self) -> int:
        return self.preprocessor.sep_id

    def build_model(self, dtype):
        from kerasllm.models.encoder import masked_lm_model

        return masked_lm_model(self.config.model, self.tokenizer.vocabulary_size, dtype)

    def example_input(self):
        from kerasllm.models.encoder import example_input

        return example_input(self.config.model, mask_positions=True)

    def describe(self) -> str:
        c = self.counts
        return (f"vocabulary {self.tokenizer.vocabulary_size} (wordpiece); {c['train']:,} training / "
                f"{c['validation']:,} validation windows of {self.config.model.seq_len} tokens; "
                f"masked-LM pretraining ({self.config.train.mask_rate:.0%} of tokens)")

    def sampler(self, model):
        return lambda: []

    def validation_explainer(self):
        return None  # masked-LM pretraining has no explanation

    def initialise(self, model, print_fn) -> None:
        _load_backbone(model, self.config, print_fn)


class QuestionAnsweringTask:
    """Fine-tuning (or training from scratch) the span head on SQuAD-format data."""

    tokenizer_name = "wordpiece"  # in `describe`
    weighted_metrics = False
    random_validation_examples = False
    # Perplexity means nothing for a span's two positions; exact match and F1
    # are `kerasllm evaluate`'s.
    epoch_metrics = ("loss", "start_accuracy", "end_accuracy")

    def __init__(self, config: RunConfig, run: RunDir, data_dir=None):
        from kerasllm.data import qa_data

        self.config = config
        self.train_data = qa_data.qa_examples(config, "train", data_dir)
        self.validation_data = qa_data.qa_examples(config, "validation", data_dir)
        if not self.train_data.examples or not self.validation_data.examples:
            raise UserError(f"data.source: {config.data.source} gives {len(self.train_data.examples)} training and "
                            f"{len(self.validation_data.examples)} validation questions; both splits need some "
                            "(more articles, or another data.val_fraction)")
        take_tokenizers(config, run)
        self.tokenizer = self._tokenizer(run)
        self.preprocessor = task_registry.for_model(config.model).preprocessor(config, self.tokenizer)
        self.counts = self._count(run)
        t = config.train
        self.batches_per_pass = self.counts["train"] // t.batch_size
        if self.batches_per_pass < t.grad_accum_steps:
            raise UserError(f"train.batch_size={t.batch_size} is more than the {self.counts['train']} training "
                            "windows; lower it")
        self.tokens_per_batch = t.batch_size * self.counts["train_tokens"] / self.counts["train"]  # tokens in use

    def _tokenizer(self, run: RunDir):
        from kerasllm.data.tokenizers import load_tokenizer, train_tokenizer

        if (run.tokenizer / "tokenizer.json").is_file():
            return load_tokenizer(run.tokenizer)
        texts = list(dict.fromkeys(e.context for e in self.train_data.examples))
        texts += [e.question for e in self.train_data.examples]
        tokenizer = train_tokenizer(self.config.tokenizer, tf.data.Dataset.from_tensor_slices(texts).batch(1024))
        tokenizer.save(run.tokenizer)
        return tokenizer

    def _windows(self, split: str) -> tf.data.Dataset:
        from kerasllm.data import qa_data

        examples = self.training_examples() if split == "train" else self.validation_data.examples
        return qa_data.window_dataset(qa_data.example_dataset(examples), self.preprocessor)

    def training_examples(self) -> list:
        """The training questions in one seeded random order. SQuAD lists
        them article by article, and a shuffle buffer of windows alone
        would fill each batch from a few neighbouring articles; a fixed
        order keeps resuming exact."""
        examples = list(self.train_data.examples)
        random.Random(self.config.train.seed).shuffle(examples)
        return examples

    def _count(self, run: RunDir) -> dict:
        """Windows per split and the training windows' tokens in use,
        counted once and remembered with the run."""
        key = {"seq_len": self.config.model.seq_len, "doc_stride": self.config.model.doc_stride,
               "max_question_tokens": self.config.model.max_question_tokens}
        if run.data.is_file():
            counts = json.loads(run.data.read_text())
            if counts.get("key") == key and "train_tokens" in counts:
                return counts
        from kerasllm.data.qa_data import window_length

        counts = {"key": key}
        for split in ("train", "validation"):
            windows, tokens = self._windows(split).reduce(
                (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
                lambda acc, w: (acc[0] + 1, acc[1] + tf.cast(window_length(*w), tf.int64)))
            counts[split], counts[f"{split}_tokens"] = int(windows), int(tokens)
        atomic_write_text(run.data, json.dumps(counts))
        return counts

    def build_model(self, dtype):
        from kerasllm.models.encoder import span_model

        return span_model(self.config.model, self.tokenizer.vocabulary_size, dtype)

    def example_input(self):
        from kerasllm.models.encoder import example_input

        return example_input(self.config.model)

    def loss(self):
        from kerasllm.models.encoder import span_losses

        return span_losses()

    def metrics(self):
        return [[keras.metrics.SparseCategoricalAccuracy(name="start_accuracy")],
                [keras.metrics.SparseCategoricalAccuracy(name="end_accuracy")]]

    def describe(self) -> str:
        c = self.counts
        from kerasllm.data.squad import SquadData

        train, validation = self.train_data, self.validation_data
        whole_file = SquadData(train.examples + validation.examples, train.skipped, train.paragraphs)
        return (f"vocabulary {self.tokenizer.vocabulary_size} ({self.tokenizer_name}); "
                f"{len(train.examples):,} training / "
                f"{len(validation.examples):,} validation questions (the file: {whole_file.summary()}) in "
                f"{c['train']:,} / {c['validation']:,} windows of {self.config.model.seq_len} tokens")

    def input_sharding(self, strategy) -> str:
        return "data" if strategy is not None and in_multi_worker_mode(strategy) else "none"

    def train_batches(self, skip: int, strategy=None):
        from kerasllm.data import pipelines, qa_data

        t, c = self.config.train, self.config
        ds = self._windows("train").cache().repeat()
        if c.data.shuffle_buffer > 1:
            ds = ds.shuffle(c.data.shuffle_buffer, seed=t.seed, reshuffle_each_iteration=True)
        ds = qa_data.length_batches(ds, t.batch_size, c.model.seq_len)
        return pipelines.shard_by_batch((ds.skip(skip) if skip else ds).prefetch(tf.data.AUTOTUNE))

    def validation_batches(self):
        from kerasllm.data import pipelines

        return pipelines.shard_by_batch(self._windows("validation").cache().batch(self.config.train.batch_size))

    def validation_explainer(self):
        from kerasllm.training.explain_callback import question_answering_explainer

        return question_answering_explainer(self.config, self)

    def sampler(self, model):
        from kerasllm.inference.qa import answer_fn, answer_questions

        t = self.config.train
        examples = self.validation_data.examples[: t.num_samples]
        answer = answer_fn(model, self.tokenizer, self.config.model)  # traced once, not for every epoch

        def sample():
            if not examples:
                return []
            answers = answer_questions(answer, [e.question for e in examples], [e.context for e in examples])
            return [f"{e.question} -> {a['answer']!r} (gold {e.answers[0]!r})" for e, a in zip(examples, answers)]

        return sample

    def initialise(self, model, print_fn) -> None:
        _load_backbone(model, self.config, print_fn)


def _load_backbone(model, config: RunConfig, print_fn) -> None:
    """Copies the encoder weights of `train.init_from`'s run into `model`'s
    backbone where name and shape match, and lists the rest."""
    from kerasllm import config as config_lib
    from kerasllm.data.tokenizers import load_tokenizer

    init = init_run(config)
    init_config = config_lib.load(init.config)
    tokenizer = load_tokenizer(init.tokenizer)
    init_task_model = task_registry.for_model(init_config.model).build(init_config.model, tokenizer.vocabulary_size)
    init.load_inference_weights(init_task_model)

    # Paths name the layer inside the backbone (token_embedding/embeddings,
    # transformer_layer_0/...), the same in any BertBackbone.
    source = {w.path: w for w in init_task_model.backbone.weights}
    loaded, grown, mismatched = 0, [], []
    for weight in model.backbone.weights:
        match = source.get(weight.path)
        if match is not None and tuple(match.shape) == tuple(weight.shape):
            weight.assign(match)
            loaded += 1
        elif match is not None and _gains_segments(match, weight):
            weight.assign(_grow_rows(match, weight.shape[0]))
            grown.append(weight.path)
        else:
            mismatched.append(weight.path + ("" if match is None else f" {tuple(match.shape)} -> {tuple(weight.shape)}"))
    new = [w.path for w in model.weights if not any(w is b for b in model.backbone.weights)]
    print_fn(f"Initialised {loaded} of {len(model.backbone.weights)} encoder weights from {init.root}"
             + (f"; extended with rows copied from the last one: {', '.join(grown)}" if grown else "")
             + (f"; not loaded (no match or other shape): {', '.join(mismatched)}" if mismatched else "")
             + (f"; trained from scratch: {', '.join(new)}" if new else ""))


def _gains_segments(source, weight) -> bool:
    """The segment embedding with more rows than its pretrained source (it
    gains one with `model.question_match`); other tables of another shape
    stay listed as not loaded."""
    return (weight.path == "segment_embedding/embeddings" and source.shape[1] == weight.shape[1]
            and source.shape[0] < weight.shape[0])


def _grow_rows(source, rows: int):
    """The source's rows, then copies of its last row: a new segment
    starts out as the context segment and learns how it differs."""
    values = keras.ops.convert_to_numpy(source)
    return np.concatenate([values, np.repeat(values[-1:], rows - values.shape[0], axis=0)])
