"""`kerasllm generate` from a run: a stream prints what --no-stream prints
for every tokenizer kind, a request may run past the context (a sliding
window), long prompts and unknown characters are each one warning line."""

import pytest

from conftest import ROOT, cli_in_process

# Tokenizer settings per kind: WordPiece and SentencePiece learn a
# vocabulary of this size; code points stay below 256 (the text is ASCII)
# so that the output layer stays small.
KINDS = {
    "char": [],
    "byte": [],
    "codepoint": ["tokenizer.vocab_size=256"],
    "wordpiece": ["tokenizer.vocab_size=200"],
    "sentencepiece": ["tokenizer.vocab_size=200"],
}


@pytest.fixture(scope="module")
def runs(trained, tmp_path_factory):
    """A tiny run per tokenizer kind, trained for a few steps (made on first
    use; char is the shared `trained` run)."""
    made = {"char": trained[0]}

    def run(kind):
        if kind not in made:
            run_dir = tmp_path_factory.mktemp(kind) / "run"
            settings = [f"tokenizer.kind={kind}", *KINDS[kind], "train.epochs=1", "train.steps_per_epoch=10",
                        "train.num_samples=0"]
            out = cli_in_process("train", "--config", ROOT / "configs" / "tiny-char.yaml", "--run-dir", run_dir,
                                 "--quiet", *[a for s in settings for a in ("--set", s)])
            assert out.code == 0, out.err
            made[kind] = run_dir
        return made[kind]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_stream_prints_what_no_stream_prints(runs, cli, kind):
    """25 new tokens: two stream calls (16 + 9), each continuing the ids of
    the last; a stream once re-tokenized its decoded text between calls,
    and WordPiece text then went another way after the first 16 tokens."""
    run_dir = runs(kind)
    for settings in (["--temperature", "0"], ["--temperature", "1.5", "--seed", "5"]):
        args = ["generate", "--run", run_dir, "ROMEO:", "--max-new-tokens", "25", *settings]
        streamed, printed = cli(*args), cli(*args, "--no-stream")
        assert streamed.code == 0, streamed.err
        assert streamed.out == printed.out and streamed.out.startswith("ROMEO:"), (kind, settings)
        assert streamed.err == printed.err == ""


@pytest.mark.slow
def test_a_run_generates_past_its_context_and_keeps_the_prompt(trained, cli):
    run_dir, _ = trained  # a 32-token context, char tokens
    greedy = ["--temperature", "0"]
    short = cli("generate", "--run", run_dir, "ROMEO:", "--max-new-tokens", "20", *greedy)
    long = cli("generate", "--run", run_dir, "ROMEO:", "--max-new-tokens", "80", *greedy, "--no-stream")
    assert long.code == 0 and long.err == ""  # nothing lowered, no prompt cut
    assert len(long.out) == len("ROMEO:") + 80 + 1  # 80 characters and the newline
    # The first 20 tokens are the 20-token request's: the prompt was not
    # given up to make room for the 80.
    assert long.out.startswith(short.out.rstrip("\n"))
    # A sampled stream slides its windows where one-shot generation does.
    sampled = ["ROMEO:", "--max-new-tokens", "80", "--temperature", "1.5", "--seed", "2"]
    assert cli("generate", "--run", run_dir, *sampled).out == cli("generate", "--run", run_dir, *sampled, "--no-stream").out
    # Beam search makes one pass, within the context, and says so.
    beams = cli("generate", "--run", run_dir, "ROMEO:", "--max-new-tokens", "40", "--beams", "4")
    assert beams.code == 0 and beams.err.splitlines()[0] == (
        "warning: max_new_tokens=40 lowered to 31: the model's context is 32 tokens; beam search does not slide past it")


@pytest.mark.slow
def test_sliding_windows_do_not_depend_on_the_call_size(trained):
    """The ids a stream carries (16 a call) and one call per window give the
    same tokens: window starts move only when a window is full."""
    from kerasllm.export.client import LanguageModelClient
    from kerasllm.inference.windows import window_keep, window_start

    assert window_keep(32) == 24 and window_start(31, 0, 32) == 0 and window_start(32, 0, 32) == 8
    lm = LanguageModelClient.open(run=str(trained[0]))
    rows, n = lm.prompt_rows(["ROMEO:", "First Citizen:"], 70)
    by_window = list(lm.continue_ids(rows, n, seed=9, temperature=1.5))
    by_five = list(lm.continue_ids(rows, n, seed=9, chunk=5, temperature=1.5))
    assert len(by_window) < len(by_five) and by_window[-1] == by_five[-1]
    new, ended = by_window[-1]
    assert all(len(ids) == 70 or stopped for ids, stopped in zip(new, ended))


@pytest.mark.slow
def test_a_long_prompt_is_one_warning_line(trained, cli):
    run_dir, _ = trained
    prompt = "First Citizen:\nBefore we proceed any further"  # 44 characters + the start token: over 32
    for stream in ("--stream", "--no-stream"):
        out = cli("generate", "--run", run_dir, prompt, "--max-new-tokens", "10", "--temperature", "0", stream)
        assert out.code == 0 and out.out.startswith(prompt)
        assert out.err == "warning: prompt of 45 tokens cut to its last 24 to fit the context of 32\n"


@pytest.mark.slow
def test_unknown_characters_are_named_once(trained, cli, tmp_path):
    run_dir, _ = trained
    # Two samples, one warning; characters the model knows are not named.
    out = cli("generate", "--run", run_dir, "日本語 ROMEO:", "--max-new-tokens", "5", "--num-samples", "2")
    assert out.code == 0 and out.out.startswith("日本語 ROMEO:")
    assert out.err == "warning: 3 characters not in the model's vocabulary, read as unknown (<unk>): '日' '本' '語'\n"
    (tmp_path / "lines.txt").write_text("To be, or not to be\nçà\n\u2028 ROMEO:\n", encoding="utf-8")
    scored = cli("score", "--run", run_dir, tmp_path / "lines.txt")
    assert scored.code == 0 and len(scored.err.splitlines()) == 1
    assert scored.err.startswith("warning: 3 characters not in the model's vocabulary") and "'ç' 'à' '\\u2028'" in scored.err


def test_unknown_characters_of_a_lowercasing_tokenizer_are_found_after_lowercasing():
    import tensorflow as tf

    from kerasllm.config import TokenizerConfig
    from kerasllm.data.tokenizers import train_tokenizer

    tok = train_tokenizer(TokenizerConfig(kind="char", lowercase=True), tf.data.Dataset.from_tensor_slices([["romeo"]]))
    assert tok.unknown_characters(["ROMEO and Ω"]) == [" ", "a", "n", "d", "Ω"] and tok.unknown_characters([""]) == []
    assert train_tokenizer(TokenizerConfig(kind="byte"), None).unknown_characters(["Ω"]) == []
