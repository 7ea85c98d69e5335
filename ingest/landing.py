"""Landing zones: where source files arrive, a local folder or an S3 prefix, behind one interface.

Readers only ever see local files, so an S3 object is fetched into a cache folder first, and
fetched again only when its ETag changes. Keys are always '/'-separated and relative to the
landing zone's root, whichever kind it is, so the rest of ingest never cares where a file lives.

S3 is reached through boto3's standard credential chain (environment, profile, instance role).
`GPULEDGER_S3_ENDPOINT_URL` points gpuledger alone at an S3-compatible store (MinIO, Ceph, moto);
without it boto3's own `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` settings still apply.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Protocol

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from ingest.files import CHUNK, fingerprint

ENDPOINT_ENV = "GPULEDGER_S3_ENDPOINT_URL"
IN_PROGRESS = ".tmp"  # collectors write under this suffix and rename when the file is complete
RETRIES = {"mode": "standard", "max_attempts": 5}  # throttling, 5xx and dropped connections


@dataclass(frozen=True)
class LandingFile:
    key: str  # relative to the landing zone's root, '/'-separated
    size: int
    version: str  # S3: the ETag without quotes; local: the content's sha256 (or size:mtime, when listed quickly)
    modified: float = 0.0  # POSIX seconds (S3 LastModified or st_mtime): which manifest is newest
    hashed: bool = True  # False: a local file listed quickly, `version` is size:mtime_ns (see `hashed_version`)


class Landing(Protocol):
    uri: str

    def list(self, suffixes: tuple[str, ...], hash_content: bool = True,
             keys: Callable[[str], bool] | None = None) -> list[LandingFile]: ...

    def local_path(self, f: LandingFile) -> Path: ...

    def path_for_uri(self, uri: str, marker: str) -> str: ...

    def exists(self, key: str) -> bool: ...


class ObjectChanged(RuntimeError):
    """The object was replaced between listing it and fetching it; list again."""


def open_landing(location: str, cache_dir: Path) -> Landing:
    if location.startswith("s3://"):
        return S3Landing(location, cache_dir)
    return LocalLanding(Path(location))


def key_after(uri: str, marker: str) -> str:
    """The landing key of a manifest's data file: the marker (without its leading '/') and what follows.

    AWS CUR manifests name data files by full s3:// URI, in whatever bucket and prefix the export
    was written to, even when the export has since been synced elsewhere. With the marker
    `/<export>/data/`, `s3://any/where/<export>/data/BILLING_PERIOD=2026-11/x.parquet` becomes
    `<export>/data/BILLING_PERIOD=2026-11/x.parquet` in every landing zone that holds the export.
    """
    if not marker.strip("/"):
        raise ValueError(f"empty marker for {uri}")
    if marker not in uri:
        raise ValueError(f"data file {uri} is not under the export's data folder (no {marker!r} in it)")
    key = marker.lstrip("/") + uri.split(marker, 1)[1]
    _check_key(key)
    return key


def _check_key(key: str) -> None:
    # A key comes from a bucket listing or a manifest written by someone else; joined to a local
    # folder, '..' or an absolute path would read or write outside the landing zone or the cache.
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unusable landing key {key!r}: it must be a relative '/'-separated path "
                         "without empty, '.' or '..' parts")


def hashed_version(landing: Landing, f: LandingFile) -> LandingFile:
    """The file with its content's sha256 as its version, if it was listed quickly."""
    return f if f.hashed else replace(f, version=fingerprint(landing.local_path(f)).sha256, hashed=True)


def _wanted(name: str, suffixes: tuple[str, ...]) -> bool:
    return name.endswith(suffixes) and not name.endswith(IN_PROGRESS)


def _walk(folder: str, prefix: str = "") -> Iterator[tuple[str, os.DirEntry]]:
    """Every file under `folder` with its '/'-separated key, as Path.rglob finds them (a link to a
    file is a file, a link to a folder is not entered), at a quarter of its cost: a folder's
    entries say what they are without a stat, and a file is stat'ed once. Every run lists the
    whole landing zone, a million files or more for a large fleet's month."""
    with os.scandir(folder) as entries:
        found = list(entries)
    for entry in found:
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry.path, f"{prefix}{entry.name}/")
        elif entry.is_file():
            yield f"{prefix}{entry.name}", entry


class LocalLanding:
    def __init__(self, root: Path) -> None:
        root = root.expanduser().absolute()
        if not root.is_dir():
            raise FileNotFoundError(f"landing folder {root} does not exist or is not a folder")
        self.root = root
        self.uri = str(root)

    def list(self, suffixes: tuple[str, ...], hash_content: bool = True,
             keys: Callable[[str], bool] | None = None) -> list[LandingFile]:
        """`hash_content=False` is for noticing changes cheaply (a sensor's tick): the version is
        then size and mtime, not the sha256 that ingestion's exactly-once bookkeeping needs.
        `keys`: only the files whose key it accepts, decided before their stat."""
        files = []
        for key, entry in _walk(str(self.root)):
            if _wanted(entry.name, suffixes) and (keys is None or keys(key)):
                stat = entry.stat()
                version = fingerprint(Path(entry.path)).sha256 if hash_content else f"{stat.st_size}:{stat.st_mtime_ns}"
                files.append(LandingFile(key, stat.st_size, version, stat.st_mtime, hash_content))
        return sorted(files, key=lambda f: f.key)

    def local_path(self, f: LandingFile) -> Path:
        _check_key(f.key)
        return self.root / f.key

    def path_for_uri(self, uri: str, marker: str) -> str:
        return key_after(uri, marker)

    def exists(self, key: str) -> bool:
        _check_key(key)
        return (self.root / key).is_file()


def s3_client() -> BaseClient:
    endpoint = os.environ.get(ENDPOINT_ENV) or None
    # S3-compatible stores rarely serve virtual-hosted bucket names, so a custom endpoint gets
    # path-style addressing; real AWS keeps boto3's default.
    s3 = {"addressing_style": "path"} if endpoint else {}
    config = Config(retries=RETRIES, s3=s3)
    # A session per client: boto3's default session is shared and not thread-safe.
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) with the prefix either empty or ending in '/'."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri} is not an s3:// URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{uri} names no bucket")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


class S3Landing:
    def __init__(self, uri: str, cache_dir: Path, client: BaseClient | None = None) -> None:
        self.bucket, self.prefix = split_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.cache_dir = Path(cache_dir)
        self.client = client or s3_client()

    def list(self, suffixes: tuple[str, ...], hash_content: bool = True,
             keys: Callable[[str], bool] | None = None) -> list[LandingFile]:
        files = []  # the ETag is the version either way
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix):]
                if _wanted(key.rsplit("/", 1)[-1], suffixes) and (keys is None or keys(key)):
                    files.append(LandingFile(key, obj["Size"], obj["ETag"].strip('"'),
                                             obj["LastModified"].timestamp()))
        return sorted(files, key=lambda f: f.key)

    def cache_path(self, key: str) -> Path:
        _check_key(key)
        return self.cache_dir / self.bucket / (self.prefix + key)

    def _etag_path(self, key: str) -> Path:
        # A separate tree, so no object name can collide with a sidecar; bucket names cannot start with '.'.
        return self.cache_dir / ".etags" / self.bucket / (self.prefix + key)

    def cached_version(self, f: LandingFile) -> str | None:
        path, etag = self.cache_path(f.key), self._etag_path(f.key)
        if not (path.is_file() and etag.is_file()) or path.stat().st_size != f.size:
            return None
        return etag.read_text(encoding="utf-8").strip()

    def local_path(self, f: LandingFile) -> Path:
        path = self.cache_path(f.key)
        if self.cached_version(f) == f.version:
            return path
        etag = self._etag_path(f.key)
        # Drop the old ETag first: a crash after the new bytes land but before the new ETag is
        # written then means "fetch again", never "the old ETag vouches for new bytes".
        etag.unlink(missing_ok=True)
        modified = self._download(f, path)
        # The cached copy carries the object's LastModified, so code that orders files by mtime
        # (the newest manifest of a period) sees S3's order, not the order of our downloads.
        os.utime(path, (modified, modified))
        _write_atomically(etag, f.version.encode())
        return path

    def _download(self, f: LandingFile, path: Path) -> float:
        object_key = self.prefix + f.key
        try:
            # If-Match: the bytes fetched are the version listed, or nothing is cached at all.
            response = self.client.get_object(Bucket=self.bucket, Key=object_key, IfMatch=f'"{f.version}"')
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"s3://{self.bucket}/{object_key} no longer exists") from None
            if code in ("PreconditionFailed", "412"):
                raise ObjectChanged(f"s3://{self.bucket}/{object_key} changed since it was listed "
                                    f"(listed ETag {f.version})") from None
            raise
        body = response["Body"]
        with _atomic_file(path) as out:
            while chunk := body.read(CHUNK):
                out.write(chunk)
        return response["LastModified"].timestamp()

    def path_for_uri(self, uri: str, marker: str) -> str:
        return key_after(uri, marker)

    def exists(self, key: str) -> bool:
        _check_key(key)
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True


@contextmanager
def _atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file written under a temporary name beside its target and renamed into place on success,
    so a crash or a dropped connection never leaves a half file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=IN_PROGRESS)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_atomically(path: Path, data: bytes) -> None:
    with _atomic_file(path) as out:
        out.write(data)
