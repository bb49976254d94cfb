"""Blob storage for uploaded files: content-addressed by SHA-256, behind an interface an object store can implement."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from flask import current_app

from app.errors import StorageUnavailable

log = logging.getLogger(__name__)

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


# S3 error codes that mean "no such object"; every other failure means the store cannot serve us now.
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3BlobStore:
    """Blobs as objects <prefix><sha256> in one bucket of an S3-compatible store (AWS S3, MinIO, Ceph...).

    A store that does not answer, or answers with anything but "no such object" (a missing bucket, refused
    credentials), raises StorageUnavailable: the request answers 503 with Retry-After and writes nothing."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str = "path",
        connect_timeout_s: float = 3,
        read_timeout_s: float = 20,
        max_attempts: int = 2,
    ) -> None:
        # Imported here: a deployment on local disk never loads boto3.
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            # None falls back to boto3's own chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, roles.
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                # A request thread waits at most about attempts x timeout before the client hears 503.
                retries={"max_attempts": max_attempts, "mode": "standard"},
                s3={"addressing_style": addressing_style},
            ),
        )

    def _name(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in _MISSING:
                raise FileNotFoundError(kwargs.get("Key")) from exc
            log.warning("object store refused %s: %s", operation, code)
            raise StorageUnavailable() from exc
        except BotoCoreError as exc:
            log.warning("object store unreachable on %s: %s", operation, type(exc).__name__)
            raise StorageUnavailable() from exc

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        # Always written, even when stored already: one request either way, an S3 PUT replaces an object
        # atomically (readers see the old bytes or the new, which are the same), and the fresh LastModified
        # keeps `attachments gc` off a blob an upload in flight needs. The checksum makes the store refuse
        # bytes damaged on the way.
        self._call(
            "put_object",
            Key=self._name(key),
            Body=data,
            ContentType="application/octet-stream",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(key)).decode("ascii"),
        )
        return key

    def open(self, key: str) -> BinaryIO:
        return self._call("get_object", Key=self._name(key))["Body"]

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", Key=self._name(key))
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        # S3 answers a delete of a missing object with success.
        self._call("delete_object", Key=self._name(key))

    def modified_at(self, key: str) -> float:
        return self._call("head_object", Key=self._name(key))["LastModified"].timestamp()

    def keys(self) -> Iterator[str]:
        token: str | None = None
        while True:
            page = self._call("list_objects_v2", Prefix=self.prefix, **({"ContinuationToken": token} if token else {}))
            for item in page.get("Contents", ()):
                name = item["Key"][len(self.prefix) :]
                # Only blobs: anything else sharing the bucket or prefix is not gc's to delete.
                if _KEY.match(name):
                    yield name
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]


def _s3(config: Mapping[str, Any]) -> S3BlobStore:
    return S3BlobStore(
        config["S3_BUCKET"],
        prefix=config["S3_PREFIX"],
        endpoint_url=config["S3_ENDPOINT_URL"],
        region=config["S3_REGION"],
        access_key_id=config["S3_ACCESS_KEY_ID"],
        secret_access_key=config["S3_SECRET_ACCESS_KEY"],
        addressing_style=config["S3_ADDRESSING_STYLE"],
        connect_timeout_s=config["S3_CONNECT_TIMEOUT_S"],
        read_timeout_s=config["S3_READ_TIMEOUT_S"],
        max_attempts=config["S3_MAX_ATTEMPTS"],
    )


BLOB_STORES = {"local": lambda config: LocalBlobStore(config["UPLOAD_DIR"]), "s3": _s3}
# The settings each store is built from: a store is kept per app and rebuilt only when one of them changes.
_SETTINGS = {
    "local": ("UPLOAD_DIR",),
    "s3": (
        "S3_BUCKET",
        "S3_PREFIX",
        "S3_ENDPOINT_URL",
        "S3_REGION",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "S3_ADDRESSING_STYLE",
        "S3_CONNECT_TIMEOUT_S",
        "S3_READ_TIMEOUT_S",
        "S3_MAX_ATTEMPTS",
    ),
}


def blob_store() -> BlobStore:
    """The store BLOB_STORE names, configured from the app.

    Kept on the app between requests: an S3 client costs tens of milliseconds to build and holds the
    connection pool (boto3 clients are safe to share between threads)."""
    config = current_app.config
    kind = config["BLOB_STORE"]
    settings = (kind, *(config[name] for name in _SETTINGS[kind]))
    cached = current_app.extensions.get("blob_store")
    if cached is None or cached[0] != settings:
        cached = (settings, BLOB_STORES[kind](config))
        current_app.extensions["blob_store"] = cached
    return cached[1]
