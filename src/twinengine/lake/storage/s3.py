"""Endpoints on an S3 bucket (any S3-compatible server) through s3fs. ``location`` is ``bucket`` or
``bucket/prefix``; options ``endpoint_url`` and ``region``; credential ``access_key`` + ``secret_key``.

Writes are multipart uploads completed on commit (a small object is one PUT): an interrupted write never
shows up as an object. ``cleanup`` aborts multipart uploads left behind by killed writers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar

from twinengine.errors import InvalidInput, StorageUnavailable
from twinengine.lake.storage.base import CHUNK, StorageBackend, Writer

__all__ = ["S3Storage"]


def _unavailable(exc: Exception, what: str) -> StorageUnavailable:
    return StorageUnavailable(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")


class _S3Writer(Writer):
    def __init__(self, fs: Any, key: str) -> None:
        self.key = key
        self.fh: Any = fs.open(key, "wb", block_size=max(CHUNK, 5 * 1024 * 1024))

    def write(self, chunk: bytes | memoryview) -> None:
        try:
            self.fh.write(chunk)
        except Exception as exc:
            self.abort()
            raise _unavailable(exc, f"uploading {self.key}") from exc

    def commit(self) -> None:
        try:
            self.fh.close()
        except Exception as exc:
            self.abort()
            raise _unavailable(exc, f"completing {self.key}") from exc

    def abort(self) -> None:
        try:
            if not self.fh.closed:
                self.fh.discard()  # aborts the multipart upload; nothing becomes visible
                self.fh.closed = True  # and no later close() may complete it
        except Exception:  # best effort: cleanup() aborts what is left
            pass


class S3Storage(StorageBackend):
    protocol: ClassVar[str] = "s3"
    description: ClassVar[str] = "an S3 bucket (AWS or any S3-compatible server), through s3fs"

    def __init__(self, location: str, options: Mapping[str, Any], credential: Mapping[str, Any] | None) -> None:
        super().__init__(location, options, credential)
        self.bucket, _, prefix = location.strip("/").partition("/")
        if not self.bucket:
            raise InvalidInput("location: an s3 endpoint needs 'bucket' or 'bucket/prefix'")
        self.prefix = prefix.strip("/")
        self._fs: Any = None

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import s3fs

            client_kwargs: dict[str, Any] = {}
            if self.options.get("endpoint_url"):
                client_kwargs["endpoint_url"] = self.options["endpoint_url"]
            if self.options.get("region"):
                client_kwargs["region_name"] = self.options["region"]
            cred = self.credential or {}
            self._fs = s3fs.S3FileSystem(
                key=cred.get("access_key"), secret=cred.get("secret_key"), anon=not cred,
                client_kwargs=client_kwargs, use_listings_cache=False, skip_instance_cache=True,
                # Checksums only where S3 requires them: newer botocore defaults (CRC on every part) are not
                # understood by every S3-compatible server; the lake checksums every byte itself anyway.
                config_kwargs={"retries": {"max_attempts": 2}, "connect_timeout": 5, "read_timeout": 60,
                               "request_checksum_calculation": "when_required",
                               "response_checksum_validation": "when_required"},
            )
        return self._fs

    def _key(self, path: str) -> str:
        if ".." in path.split("/"):
            raise InvalidInput(f"path {path!r} leaves the endpoint's prefix")
        return "/".join(p for p in (self.bucket, self.prefix, path) if p)

    def writer(self, path: str, *, size_hint: int | None = None) -> Writer:
        try:
            return _S3Writer(self.fs, self._key(path))
        except InvalidInput:
            raise
        except Exception as exc:
            raise _unavailable(exc, f"cannot write to s3://{self.bucket}") from exc

    def read(self, path: str, *, offset: int = 0, length: int | None = None,
             chunk_size: int = CHUNK) -> Iterator[bytes]:
        try:
            fh = self.fs.open(self._key(path), "rb", block_size=chunk_size, cache_type="none")
        except FileNotFoundError:
            raise StorageUnavailable(f"{path} is missing from s3://{self.bucket}") from None
        except Exception as exc:
            raise _unavailable(exc, f"cannot read s3://{self._key(path)}") from exc
        with fh:
            fh.seek(offset)
            left = length
            while left is None or left > 0:
                try:
                    chunk = fh.read(chunk_size if left is None else min(chunk_size, left))
                except Exception as exc:
                    raise _unavailable(exc, f"reading s3://{self._key(path)}") from exc
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def size(self, path: str) -> int | None:
        try:
            return int(self.fs.info(self._key(path))["size"])
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise _unavailable(exc, f"cannot stat s3://{self._key(path)}") from exc

    def delete(self, path: str) -> None:
        try:
            self.fs.rm_file(self._key(path))
        except FileNotFoundError:
            return
        except Exception as exc:
            raise _unavailable(exc, f"cannot delete s3://{self._key(path)}") from exc

    def check(self) -> None:
        try:
            self.fs.ls(self.bucket, refresh=True)
        except FileNotFoundError:
            raise StorageUnavailable(f"bucket {self.bucket!r} does not exist") from None
        except Exception as exc:
            raise _unavailable(exc, f"cannot list s3://{self.bucket}") from exc

    def open_file(self, path: str) -> IO[bytes]:
        fh: IO[bytes] = self.fs.open(self._key(path), "rb")
        return fh

    def cleanup(self, *, older_than: timedelta) -> int:
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        try:
            uploads = self.fs.call_s3("list_multipart_uploads", Bucket=self.bucket).get("Uploads", [])
            for upload in uploads:
                started = upload.get("Initiated")
                if started is not None and started.astimezone(UTC) > cutoff:
                    continue
                if self.prefix and not str(upload["Key"]).startswith(self.prefix):
                    continue
                self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=upload["Key"],
                                UploadId=upload["UploadId"])
                removed += 1
        except Exception as exc:
            raise _unavailable(exc, f"cannot clean up s3://{self.bucket}") from exc
        return removed
