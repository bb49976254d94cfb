"""Blob storage for uploaded files: content-addressed by SHA-256, behind an interface an object store can implement."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app

_KEY = re.compile(r"^[0-9a-f]{64}$")


class BlobStore(Protocol):
    """Immutable blobs named by the SHA-256 of their bytes: the same bytes always get the same key."""

    def put(self, data: bytes) -> str:
        """Store the bytes (once, however often they are put) and return their key."""

    def open(self, key: str) -> BinaryIO:
        """A binary file object reading the blob; FileNotFoundError when it is not stored."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the blob; removing a missing one is not an error."""

    def keys(self) -> Iterator[str]:
        """Every stored key (for garbage collection)."""

    def modified_at(self, key: str) -> float:
        """When the blob was last written, as a Unix time."""


def blob_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_key(key: str) -> str:
    # Keys become paths: anything but a hex digest could walk out of the root.
    if not _KEY.match(key):
        raise ValueError(f"not a blob key: {key!r}")
    return key


class LocalBlobStore:
    """Blobs as files under a root folder, at <root>/ab/cd/<sha256> so no folder grows too large."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        target = self.path(key)
        try:
            # Stored already. Putting it again means it is in use again: a fresh mtime keeps `attachments gc`
            # (which spares young blobs) off it until the upload that needs it has committed.
            os.utime(target)
            return key
        except FileNotFoundError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target and rename: readers and concurrent writers of the same bytes only ever see
        # a missing file or a complete one, since os.replace is atomic within a file system.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def modified_at(self, key: str) -> float:
        return self.path(key).stat().st_mtime

    def keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/??/*"):
            if _KEY.match(path.name) and path.is_file():
                yield path.name


BLOB_STORES = {"local": lambda config: LocalBlobStore(config["UPLOAD_DIR"])}


def blob_store() -> BlobStore:
    """The store BLOB_STORE names, configured from the app (an S3-compatible one would be one more entry)."""
    config = current_app.config
    return BLOB_STORES[config["BLOB_STORE"]](config)
