"""Where data lives: local folders and S3 (or an S3-compatible endpoint), behind one small API.

Paths inside a store are relative, ``/``-separated. Locally a conditional write compares and
renames while holding ``flock`` on the folder; S3 (:mod:`billing.io.s3`) uses ``If-None-Match``
and ``If-Match``. What cannot be read or written becomes a :class:`StorageError` (exit 2).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import pyarrow as pa

from billing.config import S3_MAX_ATTEMPTS
from billing.errors import BadInputError, StorageError, UsageError


@dataclass(frozen=True)
class FileInfo:
    path: str
    """Relative to the store root."""
    size: int
    version_tag: str
    """ETag on S3, ``mtime_ns`` locally: what the manifest records to pin an input."""


class Store(Protocol):
    uri: str

    def list_files(self, prefix: str) -> list[FileInfo]: ...
    def list_dirs(self, prefix: str) -> list[str]: ...
    def exists(self, path: str) -> bool: ...
    def open_input(self, path: str) -> pa.NativeFile: ...
    def read_bytes(self, path: str) -> bytes | None: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def upload(self, path: str, local_file: Path) -> None: ...
    def copy(self, src: str, dst: str) -> int: ...
    def create_exclusive(self, path: str, data: bytes) -> bool: ...
    def read_tagged(self, path: str) -> tuple[bytes, str] | None: ...
    def write_if(self, path: str, data: bytes, expect: str | None) -> str | None: ...
    def promote(self, src_prefix: str, dst_prefix: str, names: list[str]) -> None: ...
    def delete(self, path: str) -> None: ...
    def delete_tree(self, prefix: str) -> None: ...
    def url(self, path: str) -> str: ...
    def check_readable(self) -> None: ...


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def open_store(uri: str, *, endpoint: str | None = None, max_attempts: int = S3_MAX_ATTEMPTS) -> Store:
    """A store for ``uri``: ``s3://bucket/prefix`` or a local path (``file://`` allowed).

    ``max_attempts``: per S3 request, the first included (the config's ``s3_max_attempts``).
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StorageError(f"S3 URI without a bucket: {uri}")
        parts = [p for p in parsed.path.split("/") if p]  # s3://b/p/, s3://b//p: the prefix p
        if any(p in (".", "..") for p in parts):
            # S3 keys are literal: "a/../b" is not "b" to S3, and clients disagree on resolving it.
            raise UsageError(f"S3 URI with a '.' or '..' segment: {uri}")
        from billing.io.s3 import S3Store  # boto3 is imported only when S3 is used

        return S3Store(parsed.netloc, "/".join(parts), endpoint=endpoint, max_attempts=max_attempts)
    if parsed.scheme in ("", "file"):
        return LocalStore(Path(parsed.path if parsed.scheme == "file" else uri))
    shown = f"{parsed.scheme}://{parsed.hostname or ''}{parsed.path}"  # a URI may carry a password: never shown
    if parsed.scheme.lower().partition("+")[0] in ("postgresql", "postgres"):
        raise StorageError(f"unsupported URI scheme {parsed.scheme}:// ({shown}): a stream table takes only "
                           f"postgresql:// or postgres:// URIs (no driver suffix); files a local path or s3://")
    raise StorageError(f"unsupported location {shown}: use a local path or s3://bucket/prefix")


def contains(outer: Store, inner: Store) -> bool:
    """True when ``inner`` lies at or below ``outer``, compared as normalised locations: local roots
    are resolved (``..``, symlinks, ``file://``), S3 prefixes have no empty segments."""
    a, b = outer.url(""), inner.url("")
    return b == a or b.startswith(a.rstrip("/") + "/")


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.uri = str(self.root)

    def url(self, path: str) -> str:
        return str(self.root / path) if path else str(self.root)

    def _p(self, path: str) -> Path:
        return self.root / path if path else self.root

    def check_readable(self) -> None:
        if not self.root.is_dir():
            raise StorageError(f"no such directory: {self.root}")

    def list_files(self, prefix: str) -> list[FileInfo]:
        """Every file below ``prefix``, symbolic links followed (to files and folders alike), sorted by path.

        A link that leads nowhere, or back to a folder it lies in (a loop), is unusable input
        (:class:`BadInputError` naming it), never skipped.
        """
        base = self._p(prefix)
        if not base.is_dir():
            return []
        out: list[FileInfo] = []

        def walk(folder: Path, above: tuple[str, ...]) -> None:
            real = os.path.realpath(folder)
            if real in above:
                raise BadInputError(f"{folder}: symbolic link loop (leads back to {real})")
            for p in sorted(folder.iterdir()):
                if p.is_dir():
                    walk(p, (*above, real))
                elif p.is_file():
                    st = p.stat()
                    out.append(FileInfo(p.relative_to(self.root).as_posix(), st.st_size, str(st.st_mtime_ns)))
                elif p.is_symlink() and not p.exists():
                    raise BadInputError(f"{p}: broken symbolic link (its target {os.readlink(p)} does not exist)")

        walk(base, ())
        return sorted(out, key=lambda f: f.path)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self._p(prefix)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def exists(self, path: str) -> bool:
        return self._p(path).exists()

    def open_input(self, path: str) -> pa.NativeFile:
        try:
            return pa.OSFile(str(self._p(path)), "rb")
        except OSError as e:
            raise StorageError(f"cannot read {self._p(path)}: {e.strerror or e}") from e

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return self._p(path).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write then rename: a reader sees the old content or the new one, never a part."""
        target = self._p(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes it private; outputs are as readable as any other
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)

    def upload(self, path: str, local_file: Path) -> None:
        target = self._p(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".tmp-{target.name}-")  # two writers never share it
        os.close(fd)
        try:
            shutil.copyfile(local_file, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def copy(self, src: str, dst: str) -> int:
        """``src`` copied to ``dst`` (written then renamed); its size in bytes."""
        source = self._p(src)
        if not source.is_file():
            raise StorageError(f"cannot copy {source}: it does not exist")
        self.upload(dst, source)
        return source.stat().st_size

    def create_exclusive(self, path: str, data: bytes) -> bool:
        target = self._p(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return True

    def read_tagged(self, path: str) -> tuple[bytes, str] | None:
        """Content and its tag (SHA-256 of the bytes: what a conditional write compares)."""
        data = self.read_bytes(path)
        return None if data is None else (data, _content_tag(data))

    def write_if(self, path: str, data: bytes, expect: str | None) -> str | None:
        """Replace ``path`` only if its tag is still ``expect`` (None: only if absent); the new tag, or None.

        The compare and the rename happen while this process holds ``flock`` on the folder, which
        every conditional write of the store takes: two of them never interleave on one host.
        """
        target = self._p(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with _flocked(target.parent):
            now = self.read_tagged(path)
            if (now[1] if now else None) != expect:
                return None
            self.write_bytes(path, data)
        return _content_tag(data)

    def promote(self, src_prefix: str, dst_prefix: str, names: list[str]) -> None:
        """Make a staged folder appear under its final name in one rename (refused if the name is taken)."""
        src, dst = self._p(src_prefix), self._p(dst_prefix)
        missing = [n for n in names if not (src / n).is_file()]
        if missing:
            raise StorageError(f"cannot promote {src}: {', '.join(missing)} missing")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():  # rename() would silently replace an empty folder
                raise FileExistsError(str(dst))
            os.rename(src, dst)
        except OSError as e:
            raise StorageError(f"cannot rename {src} to {dst}: {e.strerror or e}") from e
        _fsync_dir(dst.parent)
        with contextlib.suppress(OSError):  # the staging parent, once empty, goes too
            src.parent.rmdir()

    def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._p(path).unlink()

    def delete_tree(self, prefix: str) -> None:
        target = self._p(prefix)
        try:
            shutil.rmtree(target)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StorageError(f"cannot delete {target}: {e.strerror or e}") from e


def _content_tag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _flocked(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_text(store: Store, path: str) -> str | None:
    data = store.read_bytes(path)
    return None if data is None else data.decode("utf-8")


