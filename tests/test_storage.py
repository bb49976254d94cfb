"""The blob store: content-addressed, deduplicated, atomic writes, keys that cannot leave the root."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from app.services.field import storage
from app.services.field.storage import LocalBlobStore, blob_store
from config import ConfigError, load_config


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_stores_under_the_sha256_in_two_levels_of_folders(tmp_path):
    store = LocalBlobStore(tmp_path)
    data = b"\x89PNG\r\n\x1a\n some bytes"
    key = store.put(data)
    digest = hashlib.sha256(data).hexdigest()
    assert key == digest
    assert files_under(tmp_path) == [f"{digest[:2]}/{digest[2:4]}/{digest}"]
    assert store.exists(key)
    with store.open(key) as blob:
        assert blob.read() == data


def test_the_same_bytes_twice_are_stored_once(tmp_path):
    store = LocalBlobStore(tmp_path)
    first = store.put(b"same bytes")
    inode = os.stat(store.path(first)).st_ino
    os.utime(store.path(first), (1_000_000, 1_000_000))
    assert store.put(b"same bytes") == first
    assert store.put(b"other bytes") != first
    assert len(files_under(tmp_path)) == 2
    assert os.stat(store.path(first)).st_ino == inode  # not rewritten...
    assert store.modified_at(first) > time.time() - 600  # ...but marked as in use again, for gc
    assert sorted(store.keys()) == sorted([first, hashlib.sha256(b"other bytes").hexdigest()])


def test_delete_removes_the_blob_and_tolerates_a_missing_one(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = store.put(b"to delete")
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)
    with pytest.raises(FileNotFoundError):
        store.open(key)
    assert list(store.keys()) == []


def test_a_failed_write_leaves_neither_the_blob_nor_a_temporary_file(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"never stored")
    assert files_under(tmp_path) == []
    assert not store.exists(hashlib.sha256(b"never stored").hexdigest())


@pytest.mark.parametrize("key", ["../../etc/passwd", "ab/cd", "A" * 64, "", "0" * 63, "0" * 64 + "/x"])
def test_keys_that_are_not_a_sha256_are_refused(tmp_path, key):
    store = LocalBlobStore(tmp_path)
    for operation in (store.open, store.exists, store.delete):
        with pytest.raises(ValueError):
            operation(key)


def test_keys_ignores_stray_files(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = store.put(b"real")
    (tmp_path / key[:2] / key[2:4] / ".tmp-leftover").write_bytes(b"x")
    (tmp_path / "README").write_text("not a blob")
    assert list(store.keys()) == [key]
    assert list(LocalBlobStore(tmp_path / "missing").keys()) == []


def test_blob_store_follows_the_configuration(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "UPLOAD_DIR", str(tmp_path / "up"))
    with app.app_context():
        store = blob_store()
        assert isinstance(store, LocalBlobStore)
        key = store.put(b"configured")
    assert (tmp_path / "up" / key[:2] / key[2:4] / key).read_bytes() == b"configured"


def test_the_configuration_knows_every_store_and_no_other():
    from app.services.field import storage
    from config import BLOB_STORES

    assert set(BLOB_STORES) == set(storage.BLOB_STORES)


def test_configuration_defaults_and_refusals(monkeypatch):
    for name in ("BLOB_STORE", "UPLOAD_DIR", "ATTACHMENT_MAX_BYTES"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config("testing")
    assert (cfg.BLOB_STORE, cfg.ATTACHMENT_MAX_BYTES) == ("local", 10 * 1024 * 1024)
    assert cfg.UPLOAD_DIR.endswith("uploads")
    monkeypatch.setenv("BLOB_STORE", "s3")
    with pytest.raises(ConfigError, match="BLOB_STORE"):
        load_config("testing")
    monkeypatch.setenv("BLOB_STORE", "local")
    monkeypatch.setenv("ATTACHMENT_MAX_BYTES", "0")
    with pytest.raises(ConfigError, match="ATTACHMENT_MAX_BYTES"):
        load_config("testing")
