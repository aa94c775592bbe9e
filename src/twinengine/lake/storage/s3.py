"""Endpoints on an S3 bucket (any S3-compatible server) through s3fs. ``location`` is ``bucket`` or
``bucket/prefix``; options ``endpoint_url`` and ``region``; credential ``access_key`` + ``secret_key``.

Writes are multipart uploads with parts sent in parallel, completed on commit (a small object is one PUT): an
interrupted write never shows up as an object. ``cleanup`` aborts multipart uploads left behind by killed writers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar

from twinengine.errors import InvalidInput, StorageUnavailable
from twinengine.lake.storage.base import CHUNK, StorageBackend, Writer

__all__ = ["S3Storage"]


def _unavailable(exc: Exception, what: str) -> StorageUnavailable:
    return StorageUnavailable(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")


class _S3Writer(Writer):
    """A multipart upload whose parts go up in parallel (``PARALLEL`` in flight, each on its own connection)
    while the next part is being filled; completed on ``commit``. An object smaller than one part is a single
    PUT on commit, so an abandoned small write leaves nothing at all."""

    PART = 8 * 1024 * 1024  # S3 wants at least 5 MiB per part but the last
    PARALLEL = 4

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.key = path
        self.bucket, self.object_key, _ = fs.split_path(path)
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[Future[dict[str, Any]]] = []
        self.pool: ThreadPoolExecutor | None = None
        self.closed = False

    def _call(self, method: str, **kwargs: Any) -> Any:
        return self.fs.call_s3(method, Bucket=self.bucket, Key=self.object_key, **kwargs)

    def _put_part(self, number: int, body: bytes) -> dict[str, Any]:
        reply = self._call("upload_part", UploadId=self.upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def _send(self, body: bytes) -> None:
        if self.upload_id is None:
            self.upload_id = str(self._call("create_multipart_upload")["UploadId"])
            self.pool = ThreadPoolExecutor(self.PARALLEL, thread_name_prefix="lake-s3-part")
        assert self.pool is not None
        if len(self.parts) >= self.PARALLEL:
            self.parts[-self.PARALLEL].result()  # at most PARALLEL parts (and their memory) in flight
        self.parts.append(self.pool.submit(self._put_part, len(self.parts) + 1, body))

    def write(self, chunk: bytes | memoryview) -> None:
        try:
            self.buffer += chunk
            while len(self.buffer) >= self.PART:
                body = bytes(self.buffer[:self.PART])
                del self.buffer[:self.PART]
                self._send(body)
        except Exception as exc:
            self.abort()
            raise _unavailable(exc, f"uploading {self.key}") from exc

    def commit(self) -> None:
        try:
            if self.upload_id is None:
                self._call("put_object", Body=bytes(self.buffer))
            else:
                if self.buffer:
                    self._send(bytes(self.buffer))
                done = [part.result() for part in self.parts]
                self._call("complete_multipart_upload", UploadId=self.upload_id, MultipartUpload={"Parts": done})
            self.closed = True
        except Exception as exc:
            self.abort()
            raise _unavailable(exc, f"completing {self.key}") from exc
        finally:
            self.buffer = bytearray()
            if self.pool is not None:
                self.pool.shutdown(wait=True)

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.buffer = bytearray()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.upload_id is not None:
            with suppress(Exception):  # nothing becomes visible; cleanup() aborts what a failed call here leaves
                self._call("abort_multipart_upload", UploadId=self.upload_id)


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

    def _sent_since(self, upload: dict[str, Any], cutoff: datetime) -> bool:
        """Whether a part of this multipart upload arrived after ``cutoff``: a writer sends its parts in order,
        so the newest are on the last page of the listing."""
        reply = self.fs.call_s3("list_parts", Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"],
                                MaxParts=1000)
        parts = reply.get("Parts", [])
        while reply.get("IsTruncated"):
            reply = self.fs.call_s3("list_parts", Bucket=self.bucket, Key=upload["Key"],
                                    UploadId=upload["UploadId"], PartNumberMarker=reply["NextPartNumberMarker"])
            parts = reply.get("Parts", [])
        return any(part["LastModified"].astimezone(UTC) > cutoff for part in parts)

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
                if self._sent_since(upload, cutoff):  # a long upload still sending its parts is alive
                    continue
                self.fs.call_s3("abort_multipart_upload", Bucket=self.bucket, Key=upload["Key"],
                                UploadId=upload["UploadId"])
                removed += 1
        except Exception as exc:
            raise _unavailable(exc, f"cannot clean up s3://{self.bucket}") from exc
        return removed
