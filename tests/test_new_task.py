"""The task contract is complete: a task defined in this file alone
(sentence classification on a tiny CSV), registered with
`kerasllm.tasks.register`, trains, resumes, evaluates and exports through
the CLI's entry points, with no edit anywhere in kerasllm."""

import csv
import json
import random

import numpy as np
import pytest

from kerasllm import task_registry, tasks
from kerasllm.config import require
from kerasllm.errors import UserError

SEQ_LEN = 24


def _rows(config, split: str) -> list:
    """(text, label) rows of the CSV `data.source`: every fifth row is validation."""
    d = config.data
    with open(d.source, newline="", encoding="utf-8") as f:
        rows = [(r[int(d.source_field)], r[int(d.target_field)]) for r in csv.reader(f)]
    return [r for i, r in enumerate(rows) if (i % 5 == 4) == (split == "validation")]


class ClassifierPreprocessor:
    """The task's one path from text to ids: strings -> [batch, SEQ_LEN] ids
    (UTF-8 code points mod 256, + 1; 0 pads), in TF ops, so training,
    evaluation and the export read text the same way. (No tokenizer to own.)"""

    def __call__(self, texts):
        import tensorflow as tf

        codes = tf.strings.unicode_decode(texts, "UTF-8")
        return (tf.math.floormod(codes, 256) + 1).to_tensor(0, shape=[None, SEQ_LEN])


def _model(num_labels: int, dtype=None):
    import keras

    return keras.Sequential([
        keras.layers.Embedding(257, 16, mask_zero=True, dtype=dtype),
        keras.layers.GlobalAveragePooling1D(dtype=dtype),
        keras.layers.Dense(num_labels, dtype="float32"),
    ])


class ClassifierTraining:
    """The `Training` side: batches of (ids, label), a bag-of-bytes model."""

    epoch_metrics = ("loss", "accuracy")
    weighted_metrics = False
    random_validation_examples = False

    def __init__(self, config, run, data_dir):
        import tensorflow as tf

        self.config = config
        self.preprocessor = ClassifierPreprocessor()
        train, validation = _rows(config, "train"), _rows(config, "validation")
        self.labels = sorted({label for _, label in train})
        run.root.mkdir(parents=True, exist_ok=True)
        (run.root / "labels.json").write_text(json.dumps(self.labels))
        self._data = {name: (self.preprocessor(tf.constant([t for t, _ in rows])),
                             tf.constant([self.labels.index(label) for _, label in rows]))
                      for name, rows in (("train", train), ("validation", validation))}
        self.batches_per_pass = len(train) // config.train.batch_size
        self.tokens_per_batch = config.train.batch_size * SEQ_LEN

    def build_model(self, dtype):
        return _model(len(self.labels), dtype)

    def example_input(self):
        return np.zeros((1, SEQ_LEN), "int32")

    def loss(self):
        import keras

        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def describe(self) -> str:
        return f"{len(self.labels)} labels"

    def train_batches(self, skip, strategy=None):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices(self._data["train"]).repeat()
        ds = ds.shuffle(64, seed=self.config.train.seed).batch(self.config.train.batch_size, drop_remainder=True)
        return ds.skip(skip)

    def validation_batches(self):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices(self._data["validation"]).batch(self.config.train.batch_size)

    def input_sharding(self, strategy) -> str:
        return "none"

    def sampler(self, model):
        return lambda: []


class Classifier:
    """The registry entry: a sentence classifier, `model.kind: classifier`."""

    kind = "classifier"
    head = None
    description = "text-classification"
    splits = ("validation",)
    serving_kind = "text_classifier"
    commands = ()
    config_keys = ("data.source_field", "data.target_field")
    explaining = None  # `kerasllm explain` refuses it

    def explain(self, loaded, text, *passage, layers=None, heads=None):
        raise UserError(self.refuse("explain", ""))

    def validate(self, config, where):
        require(config.data.source_field != config.data.target_field, where,
                "data.source_field and data.target_field must name different columns")

    def report_corpus(self, config, data_dir):
        return None  # no data-report: the CSV is read as it is

    def open_training(self, config, run, data_dir):
        return ClassifierTraining(config, run, data_dir)

    def preprocessor(self, config, tokenizer, target_tokenizer=None):
        return ClassifierPreprocessor()

    def load_model(self, config, run):
        labels = json.loads((run.root / "labels.json").read_text())
        model = _model(len(labels))
        model(np.zeros((1, SEQ_LEN), "int32"))
        model.labels = labels
        return model, None, None

    def evaluate(self, run_dir, data_dir, split, beams=1, length_penalty=0.6):
        from kerasllm.loaded_run import load_run

        lm = load_run(run_dir)
        rows = _rows(lm.config, split)
        logits = lm.model(lm.preprocessor([t for t, _ in rows]))
        predicted = [lm.model.labels[i] for i in np.argmax(logits, axis=-1)]
        return {"accuracy": float(np.mean([p == label for p, (_, label) in zip(predicted, rows)])),
                "examples": len(rows)}

    def export(self, loaded, run_dir, name, base_dir, version, beams, length_penalty):
        import tensorflow as tf

        from kerasllm.export.saved_model import write_version

        class Module(tf.Module):
            def __init__(self, model, preprocessor, labels):
                super().__init__()
                self.model, self.preprocessor, self.labels = model, preprocessor, tf.constant(labels)

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
            def classify(self, texts):
                probabilities = tf.nn.softmax(self.model(self.preprocessor(texts)), axis=-1)
                return {"labels": tf.gather(self.labels, tf.argmax(probabilities, axis=-1)),
                        "probabilities": probabilities}

            def signatures(self):
                return {"serving_default": self.classify}

        warmup = [("serving_default", {"texts": np.array(["a fine day"], dtype=object)})]
        meta = {"kind": self.serving_kind, "labels": loaded.model.labels}
        return write_version(Module(loaded.model, loaded.preprocessor, loaded.model.labels), base_dir,
                             name or loaded.config.name, version, warmup, meta)

    def export_width(self, given, beams, beam_search_width):
        return beams

    def open_client(self, command, model=None, run=None, **options):
        raise UserError(self.refuse(command, model or run))

    def refuse(self, command, source):
        return "a text classifier; send its export's serving_default the texts to classify"

    def check_prepare(self, where):
        require(False, where, "`prepare` writes language-model shards; a classifier reads its CSV")


@pytest.fixture
def classifier():
    task = tasks.register(Classifier())
    yield task
    task_registry.unregister("classifier")


def _corpus(path) -> None:
    """Two labels a bag of bytes can tell apart: vowel-heavy and digit-heavy lines."""
    rng = random.Random(0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for i in range(200):
            alphabet, label = ("aeiou ", "soft") if i % 2 else ("0123456789 ", "hard")
            writer.writerow(["".join(rng.choice(alphabet) for _ in range(rng.randint(8, 20))), label])


def test_the_contract_names_every_member_the_commands_use():
    members = {name for name in dir(tasks.Task) if not name.startswith("_")} | set(tasks.Task.__annotations__)
    assert {"validate", "open_training", "load_model", "evaluate", "export", "export_width", "open_client",
            "refuse", "check_prepare", "report_corpus", "explain", "explaining", "config_keys", "splits",
            "serving_kind", "commands", "preprocessor"} <= members
    for task in task_registry.all_tasks():  # the built-in tasks implement it
        assert isinstance(task, tasks.Task), task
    assert isinstance(Classifier(), tasks.Task)


def test_a_registered_task_is_a_valid_model_kind_and_goes_away_again(classifier, tiny_config):
    from kerasllm import config as config_lib

    assert "classifier" in task_registry.kinds()
    with pytest.raises(UserError, match="data.source_field and data.target_field must name different columns"):
        config_lib.load(tiny_config({"model.kind": "classifier", "data.source_field": "0", "data.target_field": "0"}))
    task_registry.unregister("classifier")
    with pytest.raises(UserError, match="model.kind must be one of gpt, lstm, seq2seq, encoder, .*got 'classifier'"):
        config_lib.load(tiny_config({"model.kind": "classifier"}))


@pytest.mark.slow
def test_a_new_task_trains_evaluates_and_exports_through_the_cli(classifier, cli, tiny_config, tmp_path):
    import tensorflow as tf

    _corpus(tmp_path / "moods.csv")
    config = tiny_config({"model.kind": "classifier", "data.source": str(tmp_path / "moods.csv"),
                          "data.format": "csv", "train.batch_size": 16, "train.epochs": 3,
                          "train.steps_per_epoch": 20, "train.learning_rate": 0.05, "train.warmup_steps": 0,
                          "train.save_every_steps": 20})
    run = tmp_path / "run"
    trained = cli("train", "--config", config, "--run-dir", run, "--quiet")
    assert trained.code == 0, trained.err
    saved = (run / "config.yaml").read_text()
    assert "source_field" in saved and "doc_stride" not in saved and "sample_prompt" not in saved

    again = cli("train", "--config", config, "--run-dir", run, "--quiet")  # resumes: already complete
    assert again.code == 0 and "already" in again.out.lower() + again.err.lower()

    evaluated = cli("evaluate", "--run", run)
    assert evaluated.code == 0, evaluated.err
    result = json.loads(evaluated.out)
    assert result["split"] == "validation" and result["examples"] == 40 and result["accuracy"] >= 0.9
    wrong = cli("evaluate", "--run", run, "--split", "test")
    assert wrong.code == 2 and "text-classification runs are scored on validation" in wrong.err

    exported = cli("export", "--run", run, "--name", "moods", "--base-dir", tmp_path / "models")
    assert exported.code == 0, exported.err
    path = json.loads(exported.out)["path"]
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](texts=tf.constant(["aaa eee iou", "0123 456 789"]))
    assert [b.decode() for b in out["labels"].numpy()] == ["soft", "hard"]
    assert json.loads((tmp_path / "models/moods/1/assets.extra/kerasllm.json").read_text())["kind"] == "text_classifier"

    refused = cli("generate", "--run", run, "x")
    assert refused.code == 2 and "a text classifier" in refused.err
