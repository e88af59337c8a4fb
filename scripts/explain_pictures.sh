#!/usr/bin/env bash
# Makes the pictures of docs/interpretability.md with `kerasllm explain` on
# three small runs: a small character-level Shakespeare model (tiny-char
# made wider and trained for 1,500 steps), a toy translator that reverses
# letter strings, and a toy question answerer on "Anna likes red." passages
# (toy data written to runs/toy-data/). Runs that exist are reused (a
# finished run is found complete). Needs kerasllm installed in .venv
# (scripts/quickstart.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KERASLLM_DATA_DIR:-}" ] && [ -f ../shared/data/tinyshakespeare.txt ]; then
  export KERASLLM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
kerasllm=.venv/bin/kerasllm
mkdir -p runs/toy-data docs/images

# A language model: surprisal of each character and the last layer's self-attention.
$kerasllm train --config configs/tiny-char.yaml --run-dir runs/explain-char --quiet --set name=explain-char \
  --set model.seq_len=64 --set model.num_layers=2 --set model.hidden_dim=64 --set model.intermediate_dim=256 \
  --set train.batch_size=32 --set train.epochs=1 --set train.steps_per_epoch=1500 --set train.warmup_steps=50 \
  --set train.save_every_steps=500
$kerasllm explain --run runs/explain-char "ROMEO: What say you, my lord?" --out docs/images/explain-language-model.png

# A translator: 1,500 strings of six letters and their reversals.
.venv/bin/python - <<'EOF'
import random
rng = random.Random(0)
words = ["".join(rng.choice("abcdefgh") for _ in range(6)) for _ in range(1500)]
open("runs/toy-data/reverse.tsv", "w").write("".join(f"{w}\t{w[::-1]}\n" for w in words))
EOF
$kerasllm train --config configs/spa-eng-transformer.yaml --run-dir runs/toy-reverse --quiet \
  --set name=toy-reverse --set data.source=runs/toy-data/reverse.tsv --set tokenizer.kind=char \
  --set tokenizer.shared=false --set model.seq_len=8 --set model.num_layers=1 --set model.num_heads=1 \
  --set model.hidden_dim=32 --set model.intermediate_dim=64 --set model.dropout=0 --set train.epochs=2 \
  --set train.steps_per_epoch=200 --set train.batch_size=32 --set train.learning_rate=0.01 \
  --set train.warmup_steps=10 --set train.label_smoothing=0 --set train.num_samples=0
$kerasllm explain --run runs/toy-reverse "abcdef" --out docs/images/explain-translation.png

# Question answering: passages of three "<name> likes <colour>." sentences, one question per sentence.
.venv/bin/python - <<'EOF'
import json, random
rng = random.Random(0)
names, colours = ["Anna", "Ben", "Carl", "Dora", "Emil"], ["red", "blue", "green", "pink", "gold"]
articles = []
for a in range(200):
    facts = list(zip(rng.sample(names, 3), rng.sample(colours, 3)))
    context = " ".join(f"{n} likes {c}." for n, c in facts)
    qas = [{"id": f"{a}-{n}", "question": f"What does {n} like?",
            "answers": [{"text": c, "answer_start": context.index(f"{n} likes {c}") + len(f"{n} likes ")}]}
           for n, c in facts]
    articles.append({"title": f"article {a}", "paragraphs": [{"context": context, "qas": qas}]})
json.dump({"version": "1.1", "data": articles}, open("runs/toy-data/likes.json", "w"))
EOF
$kerasllm train --config configs/squad-qa.yaml --run-dir runs/toy-qa --quiet \
  --set name=toy-qa --set data.source=runs/toy-data/likes.json --set data.format=squad --set data.val_fraction=0.1 \
  --set train.init_from= --set tokenizer.vocab_size=60 --set model.seq_len=48 --set model.num_layers=2 \
  --set model.num_heads=2 --set model.hidden_dim=64 --set model.intermediate_dim=128 --set model.dropout=0 \
  --set model.max_question_tokens=12 --set model.doc_stride=16 --set model.max_answer_tokens=4 \
  --set train.batch_size=16 --set train.epochs=20 --set train.steps_per_epoch=40 --set train.learning_rate=0.003 \
  --set train.warmup_steps=10 --set train.time_limit_minutes=0 --set train.num_samples=0
$kerasllm explain --run runs/toy-qa "What does Anna like?" --context "Ben likes red. Anna likes gold. Carl likes pink." \
  --out docs/images/explain-question-answering.png
ls -l docs/images/explain-*.png
