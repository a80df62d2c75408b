"""S3 (or an S3-compatible endpoint) as a :class:`billing.io.storage.Store`.

Reads of Parquet go through pyarrow's S3 filesystem; listing (with ETags), small writes and
conditional writes (``If-None-Match``, ``If-Match``) through boto3. Transient faults (HTTP 500/503,
throttling, dropped connections) are retried with backoff by both clients; what still fails
becomes a :class:`StorageError` (exit 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from billing.config import S3_MAX_ATTEMPTS
from billing.errors import StorageError
from billing.io.storage import FileInfo, join


def s3_endpoint(explicit: str | None) -> str | None:
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3Store:
    def __init__(self, bucket: str, prefix: str, *, endpoint: str | None = None,
                 max_attempts: int = S3_MAX_ATTEMPTS) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}".rstrip("/")
        self.endpoint = s3_endpoint(endpoint)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        attempts = max(1, max_attempts)
        self._s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=region,
            config=Config(retries={"max_attempts": attempts, "mode": "standard"},
                          connect_timeout=10, read_timeout=60),
        )
        fs_kwargs: dict[str, Any] = {
            "region": region,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=attempts),
            "connect_timeout": 10,
            "request_timeout": 60,
        }
        if self.endpoint:
            ep = urlparse(self.endpoint)
            fs_kwargs["endpoint_override"] = ep.netloc or ep.path
            fs_kwargs["scheme"] = ep.scheme or "https"
        self._fs = pafs.S3FileSystem(**fs_kwargs)

    def url(self, path: str) -> str:
        return f"s3://{self.bucket}/{self._key(path)}".rstrip("/")

    def _key(self, path: str) -> str:
        return join(self.prefix, path)

    def _fail(self, what: str, path: str, e: Exception) -> StorageError:
        code = getattr(e, "response", {}).get("Error", {}).get("Code") if hasattr(e, "response") else None
        detail = f"{code}" if code else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return StorageError(f"cannot {what} {self.url(path)}: {detail}")

    def check_readable(self) -> None:
        try:
            self._s3.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""), MaxKeys=1)
        except Exception as e:  # botocore raises many classes; all mean "not usable"
            raise self._fail("list", "", e) from e

    def list_files(self, prefix: str) -> list[FileInfo]:
        key_prefix = self._key(prefix)
        if key_prefix:
            key_prefix += "/"
        root = self._key("")
        out = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key_prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/"):
                        continue  # a folder marker (the S3 console, Hadoop), not a file: a folder locally
                    rel = obj["Key"][len(root) + 1:] if root else obj["Key"]
                    out.append(FileInfo(rel, int(obj["Size"]), obj["ETag"].strip('"')))
        except Exception as e:
            raise self._fail("list", prefix, e) from e
        return sorted(out, key=lambda f: f.path)

    def list_dirs(self, prefix: str) -> list[str]:
        key_prefix = self._key(prefix)
        if key_prefix:
            key_prefix += "/"
        names = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=key_prefix, Delimiter="/"):
                for cp in page.get("CommonPrefixes", []):
                    names.append(cp["Prefix"][len(key_prefix):].rstrip("/"))
        except Exception as e:
            raise self._fail("list", prefix, e) from e
        return sorted(names)

    def exists(self, path: str) -> bool:
        return self.read_bytes(path) is not None

    def open_input(self, path: str) -> pa.NativeFile:
        try:
            return self._fs.open_input_file(f"{self.bucket}/{self._key(path)}")
        except OSError as e:
            raise self._fail("read", path, e) from e

    def read_bytes(self, path: str) -> bytes | None:
        try:
            resp = self._s3.get_object(Bucket=self.bucket, Key=self._key(path))
            return resp["Body"].read()
        except self._s3.exceptions.NoSuchKey:
            return None
        except Exception as e:
            raise self._fail("read", path, e) from e

    def write_bytes(self, path: str, data: bytes) -> None:
        """One PUT: S3 makes it visible whole or not at all."""
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)
        except Exception as e:
            raise self._fail("write", path, e) from e

    def upload(self, path: str, local_file: Path) -> None:
        try:
            self._s3.upload_file(str(local_file), self.bucket, self._key(path))
        except Exception as e:
            raise self._fail("write", path, e) from e

    def copy(self, src: str, dst: str) -> int:
        """A server-side copy (multipart above 8 MB, so any size works); the copy's size in bytes."""
        try:
            self._s3.copy({"Bucket": self.bucket, "Key": self._key(src)}, self.bucket, self._key(dst))
            return int(self._s3.head_object(Bucket=self.bucket, Key=self._key(dst))["ContentLength"])
        except Exception as e:
            raise self._fail("copy to", dst, e) from e

    def create_exclusive(self, path: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(path), Body=data, IfNoneMatch="*")
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                return False
            raise self._fail("write", path, e) from e
        return True

    def read_tagged(self, path: str) -> tuple[bytes, str] | None:
        """Content and ETag, from one GET (so the two always belong together)."""
        try:
            resp = self._s3.get_object(Bucket=self.bucket, Key=self._key(path))
            return resp["Body"].read(), resp["ETag"]
        except self._s3.exceptions.NoSuchKey:
            return None
        except Exception as e:
            raise self._fail("read", path, e) from e

    def write_if(self, path: str, data: bytes, expect: str | None) -> str | None:
        """One conditional PUT: ``If-Match: expect``, or ``If-None-Match: *`` when ``expect`` is None."""
        from botocore.exceptions import ClientError

        cond = {"IfNoneMatch": "*"} if expect is None else {"IfMatch": expect}
        try:
            resp = self._s3.put_object(Bucket=self.bucket, Key=self._key(path), Body=data, **cond)
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "NoSuchKey", "404"):
                return None
            raise self._fail("write", path, e) from e
        except Exception as e:
            raise self._fail("write", path, e) from e
        return str(resp["ETag"])

    def promote(self, src_prefix: str, dst_prefix: str, names: list[str]) -> None:
        """Server-side copies in the given order (S3 has no rename), then the staged objects go."""
        for name in names:
            src, dst = join(src_prefix, name), join(dst_prefix, name)
            try:  # the managed copy switches to multipart copy above 8 MB, so any size works
                self._s3.copy({"Bucket": self.bucket, "Key": self._key(src)}, self.bucket, self._key(dst))
            except Exception as e:
                raise self._fail("copy to", dst, e) from e
        self.delete_tree(src_prefix)

    def delete(self, path: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(path))
        except Exception as e:
            raise self._fail("delete", path, e) from e

    def delete_tree(self, prefix: str) -> None:
        for f in self.list_files(prefix):
            self.delete(f.path)
