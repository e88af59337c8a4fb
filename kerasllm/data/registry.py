"""Named datasets: canonical URL, checksum, archive member, local file name.

`resolve("tinyshakespeare")` returns a local path. The data directory is
`--data-dir`, else `$KERASLLM_DATA_DIR`, else `~/.cache/kerasllm`. A file that
is already there is used as it is; otherwise it is downloaded, its checksum
checked, and only then renamed into place, so a failed or corrupt download
leaves nothing behind. A file that no URL serves as it is (`tang-poems`,
assembled from many source files) is not downloaded: the error says how it
was made and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from kerasllm.errors import UserError

ENV_VAR = "KERASLLM_DATA_DIR"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset, as stored locally and where it comes from."""

    filename: str  # name inside the data directory
    url: str
    digest: str  # hex digest of the downloaded file (the archive, if any)
    algorithm: str = "sha256"
    member: Optional[str] = None  # file to extract from a zip archive
    # Set for a file that no URL serves as it is (it was assembled from
    # several source files): how to make it, said instead of downloading.
    # `url` then points at the sources.
    assembled: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    files: dict  # split name -> RemoteFile
    format: str  # how `sources` reads it: text | tsv | squad | jsonl


DATASETS = {
    "tinyshakespeare": DatasetInfo(
        name="tinyshakespeare",
        description="Tiny Shakespeare, 1.1 MB of plays (karpathy/char-rnn)",
        files={
            "train": RemoteFile(
                filename="tinyshakespeare.txt",
                url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                digest="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            )
        },
        format="text",
    ),
    "spa-eng": DatasetInfo(
        name="spa-eng",
        description="English-Spanish sentence pairs (Tatoeba / manythings.org), English<TAB>Spanish",
        files={
            "train": RemoteFile(
                filename="spa-eng.tsv",
                url="http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
                digest="0c4fd7825d3d872488d38c157f784e035edab4f2ff0df25a2a208790ecb5b58f",
                member="spa-eng/spa.txt",
            )
        },
        format="tsv",
    ),
    "squad-v1.1": DatasetInfo(
        name="squad-v1.1",
        description="SQuAD v1.1 reading comprehension, train and dev",
        files={
            # The project publishes MD5s for these two files.
            "train": RemoteFile(
                filename="squad-v1.1-train.json",
                url="https://rajpurkar.github.io/SQuAD-explorer/dataset/train-v1.1.json",
                digest="981b29407e0affa3b1b156f72073b945",
                algorithm="md5",
            ),
            "dev": RemoteFile(
                filename="squad-v1.1-dev.json",
                url="https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v1.1.json",
                digest="3e85deb501d4e538b6bc56f786231552",
                algorithm="md5",
            ),
        },
        format="squad",
    ),
    "tang-poems": DatasetInfo(
        name="tang-poems",
        description="The Complete Tang Poems (全唐诗), 57,603 poems in traditional characters, one JSON object "
        "per line: title, author, text (the title, a line break, the poem)",
        files={
            "train": RemoteFile(
                filename="tang-poems.jsonl",
                url="https://github.com/chinese-poetry/chinese-poetry/tree/99ebbef7e1345c0985c44b9fd96a3f9e776f117b/"
                "%E5%85%A8%E5%94%90%E8%AF%97",
                digest="a561e13e40af431845225ea294453f061b7f984efb9be4b81080888fd3a005b7",
                assembled=(
                    "it is assembled from the 58 files 全唐诗/poet.tang.<N>.json (N = 0, 1000, ..., 57000, in that "
                    "order) of github.com/chinese-poetry/chinese-poetry at commit 99ebbef7e134: one line "
                    '{"title", "author", "text"} per poem with paragraphs, text = the title, a line break and the '
                    "paragraphs (ends stripped, empty ones dropped) joined by line breaks; the result has sha256 "
                    "a561e13e40af431845225ea294453f061b7f984efb9be4b81080888fd3a005b7"
                ),
            )
        },
        format="jsonl",
    ),
}


def data_dir(explicit: Optional[str] = None) -> Path:
    """The data directory: the flag, else the environment, else the cache."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path("~/.cache/kerasllm").expanduser()


def _download(remote: RemoteFile, target: Path, timeout: float) -> None:
    """Downloads to a temporary file beside `target`, checks it, renames it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    extracted = None
    try:
        hasher = hashlib.new(remote.algorithm)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=timeout) as response:
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                hasher.update(chunk)
                out.write(chunk)
        if hasher.hexdigest() != remote.digest:
            raise UserError(
                f"checksum mismatch for {remote.url}: expected {remote.algorithm} {remote.digest}, "
                f"got {hasher.hexdigest()}; nothing was saved. Place a good copy at {target}"
            )
        if remote.member:
            fd2, extracted_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            extracted = Path(extracted_name)
            try:
                with zipfile.ZipFile(tmp) as archive, archive.open(remote.member) as src, os.fdopen(fd2, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (KeyError, zipfile.BadZipFile) as e:
                raise UserError(f"{remote.url}: cannot extract {remote.member}: {e}") from None
            os.replace(extracted, target)
        else:
            os.replace(tmp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(
            f"could not download {remote.url} ({reason}). Offline? Put the file at {target} "
            f"or point --data-dir / ${ENV_VAR} at a directory that has {target.name}"
        ) from None
    finally:
        for path in (tmp, extracted):
            if path is not None and path.exists():
                path.unlink()


def resolve(name: str, split: str = "train", directory: Optional[str] = None, timeout: float = 60.0) -> Path:
    """Local path of a registered dataset's file, downloading it if absent."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}' (known: {', '.join(sorted(DATASETS))})")
    info = DATASETS[name]
    if split not in info.files:
        raise UserError(f"dataset '{name}' has no split '{split}' (it has: {', '.join(info.files)})")
    remote = info.files[split]
    target = data_dir(directory) / remote.filename
    if not target.is_file():
        if remote.assembled:
            raise UserError(
                f"dataset '{name}': {target} is missing, and no URL serves it as it is: {remote.assembled}. "
                f"Put it there, or point --data-dir / ${ENV_VAR} at a directory that has {target.name}"
            )
        _download(remote, target, timeout)
    return target
