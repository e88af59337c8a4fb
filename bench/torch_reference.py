"""Same-machine reference for bench/train_throughput.py: a GPT shaped like
nanoGPT's (no biases, tied embeddings, PyTorch's fused causal attention, AdamW
(0.9, 0.99) with weight decay 0.1 on matrices, gradient clipping 1.0, float32
as nanoGPT runs on a CPU), trained on Tiny Shakespeare characters in a plain
PyTorch loop, at train_throughput.py's sizes: (a) nanoGPT's README CPU example
(4 layers, 4 heads, width 128, block 64, batch 12) and (b) its
shakespeare-char model (6 layers, 6 heads, width 384, block 256, batch 64).

The issue's 47 ms/step for nanoGPT was measured on one host; the cloud VM
this project runs on changes hosts between sittings (Intel with AMX, AMD
Zen 5), and PyTorch speeds up or slows down with it. Run this beside
train_throughput.py to compare like with like. It needs PyTorch, which
kerasllm does not depend on; keep it out of the project's environment:

    python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==2.13.0 numpy
    /tmp/torch-venv/bin/python bench/torch_reference.py [--size a|b] [--steps 300]

Prints one JSON line: median ms/step and tokens/s over the steps after the
first 10% (at least 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from record import emit  # bench/record.py

SIZES = {  # layers, heads, width, block, batch
    "a": (4, 4, 128, 64, 12),
    "b": (6, 6, 384, 256, 64),
}


class Block(nn.Module):
    """Pre-norm attention + 4x GELU MLP, no biases (nanoGPT's bias=False)."""

    def __init__(self, heads: int, width: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, bias=False)
        self.norm2 = nn.LayerNorm(width, bias=False)
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.attn_out = nn.Linear(width, width, bias=False)
        self.up = nn.Linear(width, 4 * width, bias=False)
        self.down = nn.Linear(4 * width, width, bias=False)

    def forward(self, x):
        b, t, w = x.shape
        heads = [z.view(b, t, self.heads, w // self.heads).transpose(1, 2) for z in self.qkv(self.norm1(x)).split(w, 2)]
        y = F.scaled_dot_product_attention(*heads, is_causal=True)
        x = x + self.attn_out(y.transpose(1, 2).reshape(b, t, w))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, layers: int, heads: int, width: int, block: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(block, width)
        self.blocks = nn.ModuleList(Block(heads, width) for _ in range(layers))
        self.norm = nn.LayerNorm(width, bias=False)
        self.logits = nn.Linear(width, vocab, bias=False)
        self.logits.weight = self.tokens.weight
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, ids, targets):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.logits(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="a")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    layers, heads, width, block, batch = SIZES[args.size]
    root = Path(__file__).resolve().parent.parent
    data_dir = Path(os.environ.get("KERASLLM_DATA_DIR", root.parent / "shared/data"))
    text = (data_dir / "tinyshakespeare.txt").read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    train = np.array([index[c] for c in text[: int(0.9 * len(text))]], dtype=np.int64)

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = GPT(len(chars), layers, heads, width, block)
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    others = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": matrices, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99)
    )
    times = []
    for step in range(args.steps):
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * min(1.0, (step + 1) / 100)
        offsets = rng.integers(0, len(train) - block - 1, batch)
        ids = torch.from_numpy(np.stack([train[i : i + block] for i in offsets]))
        targets = torch.from_numpy(np.stack([train[i + 1 : i + block + 1] for i in offsets]))
        loss = model(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        final_loss = loss.item()  # nanoGPT reads the loss every step at log_interval=1
        times.append(time.perf_counter() - start)
    median = statistics.median(times[max(3, len(times) // 10) :])
    emit(
        {
            "benchmark": "torch_reference",
            "size": args.size,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "parameters": sum(p.numel() for p in model.parameters()),
            "step_ms": round(median * 1000, 2),
            "tokens_per_second": round(batch * block / median),
            "final_loss": round(final_loss, 3),
        }
    )


if __name__ == "__main__":
    main()
