"""Progress lines on stderr for the slow phases outside training.

Tokenizer learning, `prepare`, `evaluate`, `export` and waits for the
tf.data service report what they are doing, how far they are and how long
it has taken. Training keeps Keras' own progress bar.

Where it goes and how it looks:
- stderr only: stdout carries the JSON results of `evaluate`, `export` and
  `prepare`, which must stay one machine-readable line;
- on a terminal one line is redrawn in place with '\\r' (no other escapes);
- anywhere else (a log file, a pipe) plain lines only, no '\\r' and no ANSI
  escapes, at most one every `interval_log` seconds, plus a final line;
- work that ends within `delay` seconds prints nothing at all (as tqdm's
  `delay`), so quick commands and one-line errors stay as they were;
- `--quiet`, `silenced()` or `configure(enabled=False)` turn it off.

Why not an existing progress bar: `keras.utils.Progbar` (Keras 3.15)
prints through stdout, and redraws with '\\b', '\\r' and ANSI colours
whenever the `posix` module is loaded, i.e. on every Linux, whatever the
stream is; tqdm writes '\\r' whether or not the stream is a terminal, and
rich's live display draws nothing until the end when it is not. None prints
rate-limited plain lines to a log, so this module does.

Counting never runs Python per element: loops report once per batch, and
text read inside a tf.data pipeline is summed per batch by a graph op into a
CPU variable (`count_text_bytes`) that the line reads when it is drawn. A
phase that is one long call (tracing, saving, a learner reading a dataset)
is `ticking`: a daemon thread redraws it, so its elapsed time moves.

Example:
    with Progress("evaluate", unit="sentences", total=len(sources)) as report:
        for batch in batches:
            translate(batch)
            report.advance(len(batch))
    # stderr, not a terminal, a long run:
    #   evaluate: 640/3000 sentences, 41.2/s (15.5 s)
    #   evaluate: 3000/3000 sentences, 40.8/s, done in 1 min 14 s
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import threading
import time
from typing import Callable, Optional, Union

Status = Union[str, Callable[[], str]]


@dataclasses.dataclass
class Settings:
    """What every `Progress` does unless told otherwise (see `configure`)."""

    enabled: bool = True
    delay: float = 2.0  # seconds of work before anything is shown
    interval_terminal: float = 0.2  # seconds between redraws on a terminal
    interval_log: float = 10.0  # seconds between plain lines elsewhere


SETTINGS = Settings()
_drawn: list = []  # the Progress whose line is drawn on the terminal now (at most one)
_drawn_lock = threading.Lock()


def configure(**changes) -> None:
    """Changes the defaults, e.g. `configure(enabled=False)` for a library
    caller that wants no progress lines, or `configure(delay=0)`."""
    for key, value in changes.items():
        if not hasattr(SETTINGS, key):
            raise TypeError(f"configure: no setting {key!r}")
        setattr(SETTINGS, key, value)


@contextlib.contextmanager
def silenced(when: bool = True):
    """No progress lines inside this block if `when` (a command's --quiet)."""
    saved = SETTINGS.enabled
    SETTINGS.enabled = saved and not when
    try:
        yield
    finally:
        SETTINGS.enabled = saved


def clear_line() -> None:
    """Clears a progress line drawn on the terminal, so that a message printed
    next (a warning) starts on a clean line; the next redraw restores it."""
    with _drawn_lock:
        drawn = list(_drawn)
    for progress in drawn:  # each under its own lock, taken first as everywhere (no lock-order deadlock)
        with progress._lock:
            progress._erase()


def elapsed_text(seconds: float) -> str:
    """4.2 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _fd(stream) -> Optional[int]:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _is_terminal(stream) -> bool:
    from kerasllm import quiet

    saved = quiet.saved_stderr_fd()
    if saved is not None and _fd(stream) == 2:
        return os.isatty(saved)
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _columns(stream) -> int:
    """The width of the terminal `stream` is on (stdout may be a file)."""
    from kerasllm import quiet

    fd = quiet.saved_stderr_fd() if _fd(stream) == 2 and quiet.saved_stderr_fd() is not None else _fd(stream)
    try:
        columns = os.get_terminal_size(fd).columns
    except (OSError, TypeError, ValueError):
        columns = 0
    return columns or shutil.get_terminal_size().columns  # 0: a terminal that does not know its size


def _write(stream, text: str) -> None:
    """Writes to `stream`; while `kerasllm.quiet` points descriptor 2 at
    /dev/null (hiding a C++ library's log), lines meant for stderr go to the
    real stderr it saved."""
    from kerasllm import quiet

    saved = quiet.saved_stderr_fd()
    if saved is not None and _fd(stream) == 2:
        os.write(saved, text.encode("utf-8", "replace"))
        return
    stream.write(text)
    stream.flush()


class Progress:
    """The progress line of one phase: `what: status (elapsed)`.

    Args:
        what: the phase, e.g. "export: tracing the signatures".
        unit: with `advance(n)`, what is counted ("batches", "questions").
        total: how many `unit` there will be, if known.
        ticking: redraw from a background thread (for one long call).
        stream: where lines go (default: sys.stderr when the phase starts).
        clock: seconds, monotonic (tests pass a fake one).
        settings: defaults for enabled/delay/intervals (default: SETTINGS).

    Use it as a context manager: the final line is printed on leaving it,
    unless the block raised (its error message follows instead).

    Example:
        with Progress("prepare", ticking=True) as report:
            report.update(lambda: f"{read() / 1e6:.1f} MB read")
            write_everything()
    """

    def __init__(self, what: str, unit: str = "", total: Optional[int] = None, *, ticking: bool = False,
                 stream=None, clock: Callable[[], float] = time.monotonic, settings: Optional[Settings] = None):
        self.what, self.unit, self.total, self.ticking = what, unit, total, ticking
        self.count = 0
        self._status: Status = ""
        self._stream, self._clock = stream, clock
        self._settings = settings or SETTINGS
        self._enabled = self._settings.enabled
        self._lock = threading.RLock()
        self._started = self._last = None
        self._printed = False
        self._width = 0  # characters of the line drawn on the terminal
        self._stop = threading.Event()
        self._thread = None

    # -- the caller's side ----------------------------------------------------

    def start(self) -> "Progress":
        if not self._enabled:
            return self
        self._stream = self._stream or sys.stderr
        self._terminal = _is_terminal(self._stream)
        self._started = self._clock()
        if self.ticking:
            self._thread = threading.Thread(target=self._tick_forever, name="kerasllm-progress", daemon=True)
            self._thread.start()
        return self

    def update(self, status: Status) -> None:
        """Sets the status: text, or a function that makes it when a line is drawn."""
        self._status = status
        self.tick()

    def advance(self, n: int = 1) -> None:
        """`n` more `unit` done (Keras may call it from its callback threads)."""
        with self._lock:
            self.count += n
        self.tick()

    def done(self, status: Optional[Status] = None) -> None:
        """The final line (if the phase took long enough to show at all)."""
        if not self._enabled or self._started is None:
            return
        self._stop_ticking()
        if status is not None:
            self._status = status
        with self._lock:
            elapsed = self._clock() - self._started
            if self._printed or elapsed >= self._settings.delay:
                self._emit(self._line(elapsed, final=True), final=True)
            self._started = None

    def abandon(self) -> None:
        """Stops without a final line; clears the line drawn on a terminal."""
        if not self._enabled or self._started is None:
            return
        self._stop_ticking()
        with self._lock:
            self._erase()
            self._started = None

    def __enter__(self) -> "Progress":
        return self.start()

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.done()
        else:
            self.abandon()

    def keras_callback(self):
        """A Keras callback that counts `model.evaluate` batches here.

        It is `async_safe`: Keras then runs it beside the evaluation loop
        instead of waiting for each batch's results to reach Python."""
        import keras

        callback = keras.callbacks.LambdaCallback(on_test_batch_end=lambda batch, logs=None: self.advance())
        callback.async_safe = True
        return callback

    # -- drawing ----------------------------------------------------------------

    def tick(self) -> None:
        """Draws a line if it is time to (cheap when it is not)."""
        if not self._enabled or self._started is None:
            return
        now = self._clock()
        elapsed = now - self._started
        if elapsed < self._settings.delay:
            return
        interval = self._settings.interval_terminal if self._terminal else self._settings.interval_log
        if self._last is not None and now - self._last < interval:
            return
        with self._lock:
            if self._started is None:
                return
            self._last = now
            self._emit(self._line(elapsed, final=False), final=False)

    def _line(self, elapsed: float, final: bool) -> str:
        status = self._status() if callable(self._status) else self._status
        if self.unit:
            counted = f"{self.count:,}" + (f"/{self.total:,}" if self.total is not None else "") + f" {self.unit}"
            per_second = self.count / elapsed if elapsed > 0 else 0
            rate = f", {per_second:,.0f}/s" if per_second >= 100 else f", {per_second:.1f}/s" if per_second else ""
            status = f"{counted}{rate}" + (f", {status}" if status else "")
        line = self.what + (f": {status}" if status else "")
        return f"{line}, done in {elapsed_text(elapsed)}" if final else f"{line} ({elapsed_text(elapsed)})"

    def _emit(self, line: str, final: bool) -> None:
        self._printed = True
        if not self._terminal:
            _write(self._stream, line + "\n")
            return
        width = max(_columns(self._stream) - 1, 20)
        line = line if len(line) <= width else line[: width - 1] + "…"
        _write(self._stream, "\r" + line.ljust(self._width) + ("\n" if final else ""))
        self._width = 0 if final else len(line)
        with _drawn_lock:
            if final and self in _drawn:
                _drawn.remove(self)
            elif not final and self not in _drawn:
                _drawn.append(self)

    def _erase(self) -> None:
        if self._terminal and self._width:
            _write(self._stream, "\r" + " " * self._width + "\r")
            self._width = 0
            self._last = None  # redraw at the next tick
        with _drawn_lock:
            if self in _drawn:
                _drawn.remove(self)

    def _tick_forever(self) -> None:
        pause = min(self._settings.interval_terminal, 0.5)
        while not self._stop.wait(pause):
            try:
                self.tick()
            except Exception:  # a status that cannot be read now (e.g. TF shutting down) is skipped
                pass

    def _stop_ticking(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def phase(what: str, **kwargs) -> Progress:
    """A `ticking` Progress for one long call: `with phase("export: saving"): ...`."""
    return Progress(what, ticking=True, **kwargs)


def count_text_bytes(batches, texts_of: Optional[Callable] = None):
    """`batches` unchanged, and a function that returns how many bytes of
    text have gone through it so far.

    The bytes are summed per batch by graph ops into a CPU variable (no
    Python runs inside the pipeline); `texts_of(*element)` picks the string
    tensor out of an element (default: the element is the strings).

    Example:
        batches, read = count_text_bytes(batches)
        report.update(lambda: f"{read() / 1e6:.1f} MB read")
    """
    import tensorflow as tf

    with tf.device("/cpu:0"):  # tf.data runs on the CPU and cannot use a GPU variable
        counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="text_bytes_read")

    @tf.autograph.experimental.do_not_convert
    def add(*element):
        texts = texts_of(*element) if texts_of else element[0]
        added = counter.assign_add(tf.reduce_sum(tf.cast(tf.strings.length(texts), tf.int64)))
        with tf.control_dependencies([added]):
            return tf.nest.map_structure(tf.identity, element if len(element) > 1 else element[0])

    return batches.map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), lambda: int(counter.numpy())


@contextlib.contextmanager
def learning_tokenizer(config, label: str = ""):
    """The progress of learning a vocabulary (a `TokenizerConfig`); yields a
    function that wraps the training text's dataset to count what is read.

    Example:
        with learning_tokenizer(config) as counted:
            tokenizer = learn(counted(texts))
    """
    kinds = {"char": "a character vocabulary", "wordpiece": f"a WordPiece vocabulary of {config.vocab_size}",
             "sentencepiece": f"a SentencePiece model of {config.vocab_size} pieces"}
    what = f"tokenizer{f' ({label})' if label else ''}: learning {kinds.get(config.kind, config.kind)}"
    with phase(what) as report:

        def counted(texts):
            if not report._enabled:
                return texts
            texts, read = count_text_bytes(texts)
            report.update(lambda: f"{read() / 1e6:.1f} MB of text read")
            return texts

        yield counted


class Preparing(Progress):
    """`kerasllm prepare`: MB of text read, MB/s, shards written."""

    def __init__(self, **kwargs):
        super().__init__("prepare", ticking=True, **kwargs)
        self.read: Callable[[], int] = lambda: 0  # bytes of text read so far
        self.shards: Callable[[], int] = lambda: 0  # shard files started so far
        self.update(self._describe)

    def counted(self, keyed):
        """Keyed text batches `(key, (texts, ends))`, counted as they are read."""
        if not self._enabled:
            return keyed
        keyed, self.read = count_text_bytes(keyed, texts_of=lambda key, batch: batch[0])
        return keyed

    def _describe(self) -> str:
        mb, seconds = self.read() / 1e6, self._clock() - self._started if self._started is not None else 0
        rate = f", {mb / seconds:.1f} MB/s" if seconds > 0 else ""
        return f"{mb:.1f} MB of text read{rate}, {self.shards()} shard(s) written"


def preparing(**kwargs) -> Preparing:
    """The progress of `prepare` (see `Preparing`)."""
    return Preparing(**kwargs)


def counting_tokens(split: str, service: str = "") -> Progress:
    """Counting a split's tokens before training; through the tf.data
    service at `service`, the wait for its workers' first text is named."""
    report = Progress(f"data: counting the {split} split's tokens", unit="tokens", ticking=True)
    if service:
        report.update(lambda: "" if report.count else f"waiting for the tf.data service at {service} and its workers")
    return report
