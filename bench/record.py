"""What a benchmark measured with, written into its JSON line.

Every bench/*.py ends with `emit(result, configs)`, which prints the result
with a `record` block: the UTC dates it started and ended, the git commit it
started from (and whether tracked files differed from it), the CPU (model,
the instruction-set flags that decide which kernels TensorFlow and oneDNN
use, logical CPUs), the library versions, and each kerasllm config the bench trained (the config after its
overrides, and the overrides). A figure without these cannot be compared
with a later one: the cloud VM changes hosts between sittings.

Standard library only: bench/torch_reference.py runs it in a PyTorch
environment without kerasllm or TensorFlow.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[1]

# Flags that change which matrix kernels run (oneDNN and XLA pick them at run time).
CPU_FLAGS = ("sse4_2", "fma", "avx", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")
# Distributions whose versions change the figures; absent ones are recorded as None.
LIBRARIES = ("tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy", "torch")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second, e.g. '2026-12-07T00:24:02+00:00'."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_state(root: Path = ROOT) -> dict:
    """{"commit": HEAD's hash, "dirty": whether tracked files differ from it}.

    Untracked files do not count (run directories, bench/out). Both are None
    outside a git checkout or without git.
    """
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def cpu_info(cpuinfo_text: str | None = None) -> dict:
    """{"model", "flags" (those of CPU_FLAGS the CPU has), "logical_cpus"}.

    Args:
        cpuinfo_text: the text of /proc/cpuinfo; read from the file when
            None. Without it (not Linux) the model is platform.processor()
            and flags is None.

    Example:
        >>> cpu_info("model name\\t: AMD EPYC\\nflags\\t\\t: fpu avx avx2\\n")["flags"]
        ['avx', 'avx2']
    """
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo_text = ""
    fields = {}
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor's block is enough: all are alike
            continue
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields["flags"].split()) if "flags" in fields else None
    return {
        "model": fields.get("model name") or platform.processor() or None,
        "flags": None if flags is None else [f for f in CPU_FLAGS if f in flags],
        "logical_cpus": os.cpu_count(),
    }


def library_versions() -> dict:
    """Python's version and each of LIBRARIES' installed version (None if absent)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def config_entry(config, overrides: list | None = None) -> dict:
    """{"config": the resolved config as a dict, "overrides": the KEY=VALUE list}.

    Args:
        config: a kerasllm RunConfig (anything with `to_dict()`) or a dict.
        overrides: the overrides the config was loaded with; None when not
            known (a run directory made elsewhere, whose saved config is given).
    """
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return {"config": values, "overrides": None if overrides is None else list(overrides)}


def record(configs: dict | None = None) -> dict:
    """The `record` block of a benchmark's JSON line.

    `started_utc` and `git` are taken when the bench imported this module,
    i.e. the code it ran; a benchmark runs for up to hours, so if the
    checkout changed meanwhile, `git_at_end` says to what.

    Args:
        configs: {name: config_entry(...)} for each kerasllm config the bench
            ran; None or {} when it ran none.

    Example:
        >>> sorted(record())
        ['configs', 'cpu', 'date_utc', 'git', 'started_utc', 'versions']
    """
    out = {"started_utc": STARTED["date_utc"], "date_utc": utc_now(), "git": STARTED["git"], "cpu": cpu_info(),
           "versions": library_versions(), "configs": dict(configs or {})}
    end = git_state()
    if end != STARTED["git"]:
        out["git_at_end"] = end
    return out


# When the bench started, and from which commit (it imports this module first).
STARTED = {"date_utc": utc_now(), "git": git_state()}


def emit(result: dict, configs: dict | None = None, file=None) -> None:
    """Prints `result` and its `record` block as one JSON line (stdout by default)."""
    print(json.dumps({**result, "record": record(configs)}), file=file or sys.stdout, flush=True)


def differences(old, new, path: str = "") -> list[str]:
    """Where two JSON-like values differ, as 'a.b (old -> new)' strings.

    Example:
        >>> differences({"train": {"epochs": 3}}, {"train": {"epochs": 4}})
        ['train.epochs (3 -> 4)']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    return [] if old == new else [f"{path or 'value'} ({old!r} -> {new!r})"]


def refuse(message: str, code: int = 2) -> NoReturn:
    """Ends the bench with one line on stderr ('<script>: error: message')
    and exit code 2 (a user mistake, as the kerasllm CLI does)."""
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    sys.exit(code)
