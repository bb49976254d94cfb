"""The blob store: content-addressed, deduplicated, atomic writes, keys that cannot leave the root."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from app.errors import StorageUnavailable
from app.services.field import storage
from app.services.field.storage import LocalBlobStore, S3BlobStore, blob_store
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
    monkeypatch.setenv("BLOB_STORE", "ftp")
    with pytest.raises(ConfigError, match="BLOB_STORE"):
        load_config("testing")
    monkeypatch.setenv("BLOB_STORE", "local")
    monkeypatch.setenv("ATTACHMENT_MAX_BYTES", "0")
    with pytest.raises(ConfigError, match="ATTACHMENT_MAX_BYTES"):
        load_config("testing")


# ---- the S3-compatible store, against the session's moto server ---------------------------------------------------


def objects(store: S3BlobStore) -> list[str]:
    """Every object name in the store's bucket, blobs or not."""
    page = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in page.get("Contents", ()))


def test_s3_put_stores_one_object_under_the_prefix_and_sha256(s3_store):
    data = b"\x89PNG\r\n\x1a\n some bytes"
    key = s3_store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert objects(s3_store) == [f"photos/{key}"]
    assert s3_store.exists(key)
    with s3_store.open(key) as blob:
        assert blob.read() == data
    assert s3_store.put(data) == key
    assert s3_store.put(b"other bytes") != key
    assert len(objects(s3_store)) == 2
    assert sorted(s3_store.keys()) == sorted([key, hashlib.sha256(b"other bytes").hexdigest()])
    assert s3_store.modified_at(key) > time.time() - 600


def test_s3_delete_removes_the_object_and_tolerates_a_missing_one(s3_store):
    key = s3_store.put(b"to delete")
    s3_store.delete(key)
    assert not s3_store.exists(key)
    s3_store.delete(key)
    with pytest.raises(FileNotFoundError):
        s3_store.open(key)
    with pytest.raises(FileNotFoundError):
        s3_store.modified_at(key)
    assert list(s3_store.keys()) == [] == objects(s3_store)


def test_s3_keys_lists_only_blobs_under_the_prefix_across_pages(s3_store, monkeypatch):
    stored = sorted(s3_store.put(f"blob {i}".encode()) for i in range(5))
    # Others' objects in the same bucket are not blobs, and gc must never see them.
    for name in ("README", "photos/notes.txt", f"other/{stored[0]}", f"photos/{stored[0]}.bak"):
        s3_store.client.put_object(Bucket=s3_store.bucket, Key=name, Body=b"x")
    list_page = s3_store.client.list_objects_v2
    pages = []

    def small_pages(**kwargs):
        pages.append(kwargs.get("ContinuationToken"))
        return list_page(**kwargs, MaxKeys=2)

    monkeypatch.setattr(s3_store.client, "list_objects_v2", small_pages)
    assert sorted(s3_store.keys()) == stored
    assert len(pages) == 4


@pytest.mark.parametrize("key", ["../../etc/passwd", "ab/cd", "A" * 64, "", "0" * 63, "0" * 64 + "/x"])
def test_s3_keys_that_are_not_a_sha256_are_refused(s3_store, key):
    for operation in (s3_store.open, s3_store.exists, s3_store.delete, s3_store.modified_at):
        with pytest.raises(ValueError):
            operation(key)


def test_s3_a_store_that_is_down_raises_storage_unavailable_at_once(s3_down):
    key = hashlib.sha256(b"x").hexdigest()
    for call in (
        lambda: s3_down.put(b"x"),
        lambda: s3_down.open(key),
        lambda: s3_down.exists(key),
        lambda: s3_down.delete(key),
        lambda: s3_down.modified_at(key),
        lambda: list(s3_down.keys()),
    ):
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert (caught.value.status, caught.value.code, caught.value.retry_after) == (503, "storage_unavailable", 5)


def test_s3_a_missing_bucket_is_unavailable_not_missing_blobs(app, monkeypatch, s3_endpoint):
    from tests.conftest import use_s3

    store = use_s3(app, monkeypatch, s3_endpoint, "no-such-bucket-here")
    with pytest.raises(StorageUnavailable):
        store.put(b"x")
    with pytest.raises(StorageUnavailable):
        list(store.keys())


def test_blob_store_builds_the_s3_store_once_per_configuration(app, s3_store, monkeypatch):
    with app.app_context():
        assert blob_store() is s3_store
        assert blob_store() is blob_store()
        monkeypatch.setitem(app.config, "S3_PREFIX", "elsewhere/")
        other = blob_store()
        assert isinstance(other, S3BlobStore)
        assert (other is not s3_store, other.prefix, other.bucket) == (True, "elsewhere/", s3_store.bucket)


S3_ENV = {"BLOB_STORE": "s3", "S3_BUCKET": "city-photos", "S3_ENDPOINT_URL": "http://127.0.0.1:9000"}


def test_s3_configuration_defaults(monkeypatch):
    for name in ("S3_PREFIX", "S3_REGION", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY", "S3_ADDRESSING_STYLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)
    cfg = load_config("testing")
    assert (cfg.BLOB_STORE, cfg.S3_BUCKET, cfg.S3_ENDPOINT_URL) == ("s3", "city-photos", "http://127.0.0.1:9000")
    assert (cfg.S3_PREFIX, cfg.S3_ADDRESSING_STYLE, cfg.S3_ACCESS_KEY_ID) == ("", "path", "")
    assert (cfg.S3_CONNECT_TIMEOUT_S, cfg.S3_READ_TIMEOUT_S, cfg.S3_MAX_ATTEMPTS) == (3, 20, 2)


@pytest.mark.parametrize(
    "env, message",
    [
        ({"S3_BUCKET": ""}, "S3_BUCKET"),
        ({"S3_BUCKET": "Photos"}, "S3_BUCKET"),
        ({"S3_BUCKET": "a..b"}, "S3_BUCKET"),
        ({"S3_BUCKET": "x" * 64}, "S3_BUCKET"),
        ({"S3_ENDPOINT_URL": "127.0.0.1:9000"}, "S3_ENDPOINT_URL"),
        ({"S3_ENDPOINT_URL": "ftp://store"}, "S3_ENDPOINT_URL"),
        ({"S3_ACCESS_KEY_ID": "only-the-id"}, "S3_ACCESS_KEY_ID"),
        ({"S3_SECRET_ACCESS_KEY": "only-the-secret"}, "S3_ACCESS_KEY_ID"),
        ({"S3_ADDRESSING_STYLE": "sideways"}, "S3_ADDRESSING_STYLE"),
        ({"S3_PREFIX": "/photos/"}, "S3_PREFIX"),
        ({"S3_CONNECT_TIMEOUT_S": "0"}, "S3_CONNECT_TIMEOUT_S"),
        ({"S3_READ_TIMEOUT_S": "-1"}, "S3_READ_TIMEOUT_S"),
        ({"S3_MAX_ATTEMPTS": "0"}, "S3_MAX_ATTEMPTS"),
        ({"S3_MAX_ATTEMPTS": "many"}, "S3_MAX_ATTEMPTS"),
    ],
)
def test_s3_configuration_refusals(monkeypatch, env, message):
    for name in ("S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**S3_ENV, **env}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_config("testing")
    # The local store needs none of it (other than numbers where numbers go).
    monkeypatch.setenv("BLOB_STORE", "local")
    monkeypatch.delenv("S3_MAX_ATTEMPTS", raising=False)
    assert load_config("testing").BLOB_STORE == "local"
