"""The dataset registry against a local HTTP server (no network)."""

import functools
import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from kerasllm.data import registry
from kerasllm.errors import UserError


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _register(monkeypatch, name, remote):
    info = registry.DatasetInfo(name=name, description="test", files={"train": remote}, format="text")
    monkeypatch.setitem(registry.DATASETS, name, info)


def test_download_checks_digest_and_renames(server, tmp_path, monkeypatch):
    root, url = server
    (root / "corpus.txt").write_bytes(b"hello world\n")
    digest = hashlib.sha256(b"hello world\n").hexdigest()
    _register(monkeypatch, "toy", registry.RemoteFile("toy.txt", f"{url}/corpus.txt", digest))
    cache = tmp_path / "cache"
    path = registry.resolve("toy", directory=str(cache))
    assert path == cache / "toy.txt"
    assert path.read_bytes() == b"hello world\n"
    assert sorted(p.name for p in cache.iterdir()) == ["toy.txt"]


def test_checksum_mismatch_leaves_nothing(server, tmp_path, monkeypatch):
    root, url = server
    (root / "corpus.txt").write_bytes(b"tampered\n")
    _register(monkeypatch, "toy", registry.RemoteFile("toy.txt", f"{url}/corpus.txt", "0" * 64))
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="checksum mismatch"):
        registry.resolve("toy", directory=str(cache))
    assert list(cache.iterdir()) == []


def test_zip_member_is_extracted(server, tmp_path, monkeypatch):
    root, url = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pairs/pairs.txt", "Hi.\tHola.\n")
    (root / "pairs.zip").write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    _register(monkeypatch, "pairs", registry.RemoteFile("pairs.tsv", f"{url}/pairs.zip", digest, member="pairs/pairs.txt"))
    path = registry.resolve("pairs", directory=str(tmp_path / "cache"))
    assert path.read_text() == "Hi.\tHola.\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["pairs.tsv"]


def test_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    _register(monkeypatch, "toy", registry.RemoteFile("toy.txt", "http://127.0.0.1:9/toy.txt", "0" * 64))
    with pytest.raises(UserError, match=r"could not download .* Put the file at .*toy.txt"):
        registry.resolve("toy", directory=str(tmp_path / "cache"))
    assert list((tmp_path / "cache").iterdir()) == []


def test_existing_file_is_used_as_is(tmp_path, monkeypatch):
    (tmp_path / "toy.txt").write_text("local copy")
    _register(monkeypatch, "toy", registry.RemoteFile("toy.txt", "http://127.0.0.1:9/x", "0" * 64))
    assert registry.resolve("toy", directory=str(tmp_path)).read_text() == "local copy"


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path / "env"))
    assert registry.data_dir() == tmp_path / "env"
    assert registry.data_dir(str(tmp_path / "flag")) == tmp_path / "flag"
    monkeypatch.delenv(registry.ENV_VAR)
    assert str(registry.data_dir()).endswith(".cache/kerasllm")


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown dataset 'nope'"):
        registry.resolve("nope")


def test_registered_files_match_the_shared_copies():
    from conftest import data_dir, dataset_file

    for name, info in registry.DATASETS.items():
        for split, remote in info.files.items():
            assert dataset_file(name, split) == data_dir() / remote.filename, f"{name}: {remote.filename}"
    text = dataset_file("tinyshakespeare").read_bytes()
    assert hashlib.sha256(text).hexdigest() == registry.DATASETS["tinyshakespeare"].files["train"].digest


def test_an_assembled_dataset_says_how_it_was_made_instead_of_downloading(tmp_path):
    with pytest.raises(UserError, match=r"tang-poems.jsonl is missing, and no URL serves it as it is: .*poet\.tang"):
        registry.resolve("tang-poems", directory=str(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()


def test_tang_poems_is_registered_with_its_checksum():
    from conftest import dataset_file

    remote = registry.DATASETS["tang-poems"].files["train"]
    assert hashlib.sha256(dataset_file("tang-poems").read_bytes()).hexdigest() == remote.digest
