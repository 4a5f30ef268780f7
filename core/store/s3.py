"""``s3://BUCKET/PREFIX?endpoint=http://HOST:PORT``: chunks as S3 objects, via the minio client.

Works with any S3-compatible service (MinIO, Ceph RGW, Garage, AWS S3).
Credentials come from the settings (``DRIVEGATE_S3_ACCESS_KEY`` /
``DRIVEGATE_S3_SECRET_KEY``) or, failing that, ``access_key``/``secret_key``
in the URL's query. An S3 PUT is atomic, so a blob is never seen half-written.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from core.errors import ChunkMissing, InvalidRequest, StorageFull, StorageUnavailable
from core.ids import ChunkHash

_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)


FULL_CODES = frozenset({"XMinioStorageFull", "QuotaExceeded", "StorageFull"})
"""S3 error codes for "no room": MinIO's full drives, Ceph RGW's bucket or user quota."""


def write_error(exc: S3Error, what: str) -> StorageFull | StorageUnavailable:
    """The core's error for a refused write: no room (507, retrying will not help
    until space is freed) or anything else (503, retry)."""
    if exc.code in FULL_CODES:
        return StorageFull(f"{what}: the object store is full ({exc.code})")
    return StorageUnavailable(f"{what}: {exc}")


class S3ChunkStore:
    """Chunk store in an S3 bucket under an optional key prefix."""

    def __init__(self, url: str, access_key: str | None, secret_key: str | None) -> None:
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        endpoint = urlsplit(query.get("endpoint", "https://s3.amazonaws.com"))
        if not parts.netloc or not endpoint.netloc:
            raise InvalidRequest(f"bad S3 store URL (s3://BUCKET/PREFIX?endpoint=…): {url}")
        self.url = f"s3://{parts.netloc}{parts.path}"
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/") + "/" if parts.path.strip("/") else ""
        pool = urllib3.PoolManager(
            maxsize=16,
            timeout=urllib3.Timeout(connect=5, read=60),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503)),
        )
        self.client = Minio(
            endpoint.netloc,
            access_key=access_key or query.get("access_key"),
            secret_key=secret_key or query.get("secret_key"),
            secure=endpoint.scheme == "https",
            region=query.get("region"),
            http_client=pool,
        )
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="s3-stat")
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)
        except (S3Error, *_NETWORK_ERRORS) as exc:
            raise StorageUnavailable(f"cannot reach S3 bucket {self.url}: {exc}") from None

    def _key(self, key: ChunkHash) -> str:
        return f"{self.prefix}{key[:2]}/{key}"

    def put(self, key: ChunkHash, blob: bytes | memoryview) -> None:
        try:
            self.client.put_object(
                self.bucket,
                self._key(key),
                io.BytesIO(blob),
                len(blob),
                part_size=max(len(blob), 5 * 1024 * 1024),
            )
        except S3Error as exc:
            raise write_error(exc, f"cannot write chunk {key} to {self.url}") from None
        except _NETWORK_ERRORS as exc:
            raise StorageUnavailable(f"cannot write chunk {key} to {self.url}: {exc}") from None

    def get(self, key: ChunkHash) -> bytes:
        response = None
        try:
            response = self.client.get_object(self.bucket, self._key(key))
            return bytes(response.read())
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ChunkMissing(f"chunk {key} is missing from {self.url}") from None
            raise StorageUnavailable(f"cannot read chunk {key}: {exc}") from None
        except _NETWORK_ERRORS as exc:
            raise StorageUnavailable(f"cannot read chunk {key}: {exc}") from None
        finally:
            if response is not None:
                response.close()
                response.release_conn()

    def _exists(self, key: ChunkHash) -> bool:
        try:
            self.client.stat_object(self.bucket, self._key(key))
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise StorageUnavailable(f"cannot stat chunk {key}: {exc}") from None

    def get_split(self, key: ChunkHash, head: int) -> tuple[bytes, bytes | memoryview]:
        blob = self.get(key)
        return blob[:head], memoryview(blob)[head:]

    def has_many(self, keys: Iterable[ChunkHash]) -> set[ChunkHash]:
        # S3 has no batch HEAD: ask in parallel, one round trip of latency in all.
        wanted = list(keys)
        return {
            key for key, ok in zip(wanted, self._pool.map(self._exists, wanted), strict=False) if ok
        }

    def delete_many(self, keys: Iterable[ChunkHash]) -> None:
        objects = [DeleteObject(self._key(key)) for key in keys]
        try:
            errors = list(self.client.remove_objects(self.bucket, objects))
        except (S3Error, *_NETWORK_ERRORS) as exc:
            raise StorageUnavailable(f"cannot delete chunks from {self.url}: {exc}") from None
        if errors:
            raise StorageUnavailable(f"cannot delete chunks from {self.url}: {errors[0]}")

    def list_all(self) -> Iterator[tuple[ChunkHash, float]]:
        try:
            for obj in self.client.list_objects(self.bucket, prefix=self.prefix, recursive=True):
                name = (obj.object_name or "").rsplit("/", 1)[-1]
                stamp = obj.last_modified.timestamp() if obj.last_modified else 0.0
                yield ChunkHash(name), stamp
        except (S3Error, *_NETWORK_ERRORS) as exc:
            raise StorageUnavailable(f"cannot list {self.url}: {exc}") from None

    def prefetch(self, keys: Iterable[ChunkHash]) -> None:
        """Nothing to do: readers fetch ahead on their own threads."""

    def close(self) -> None:
        self._pool.shutdown(wait=False)
