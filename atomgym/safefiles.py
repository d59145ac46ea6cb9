"""Writing files safely in folders a user gave us, and names that stay names.

Every output, lock, log and cache file the commands open for writing goes through ``open_write``
(or a temporary file made with ``mkstemp``, which is exclusive, then renamed: a rename replaces a
symbolic link, it never writes through one). ``open_write`` never follows a symbolic link in the
last component (``O_NOFOLLOW``): a link named ``.evaluate.lock`` or ``actions.log`` planted in an
output folder cannot make us truncate or append to the file it points to. ``check_name`` keeps a
name read from a file (a scenario's ``name:``, a label, a run or model name) from becoming a path
when it is put into a file name, and ``inside`` refuses a path that would resolve outside its folder.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable

# the characters of a name that goes into a file name: no separator, no "..", no control character
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")
NAME_CHARS = "letters, digits and -_.+ (starting with a letter or digit, at most 128)"


class UnsafePathError(OSError):
    """A path we refuse to write through or to read (a symbolic link, not a regular file, outside
    its folder). Its ``strerror`` is the one-line reason; handlers that print ``e.strerror`` show it."""

    def __init__(self, path: str | os.PathLike, why: str) -> None:
        super().__init__(errno.EPERM, why, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def valid_name(name: object) -> bool:
    """True for a name that can be put into a file name as it is (NAME_RE, and not all dots)."""
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None and ".." not in name


def check_name(name: object, where: str) -> str:
    """``name`` if valid_name, else ValueError: ``WHERE: 'NAME' ...; allowed: ...`` (one line)."""
    if not valid_name(name):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise ValueError(f"{where}: {shown} is not a valid name; allowed: {NAME_CHARS}, no '..'")
    return name  # type: ignore[return-value]


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused (UnsafePathError) if it would resolve outside ``folder``."""
    p = folder / name
    base = os.path.abspath(folder)
    if name in ("", ".", "..") or os.sep in name or os.path.dirname(os.path.abspath(p)) != base:
        raise UnsafePathError(p, f"resolves outside {folder}; refused")
    return p


def open_write(path: str | os.PathLike, append: bool = False, exclusive: bool = False, binary: bool = False,
               newline: str | None = None) -> IO:
    """Open ``path`` for writing (truncated, appended to with ``append``, or created new with
    ``exclusive``) without following a symbolic link there, and only if it is (or becomes) a
    regular file: a link, a FIFO or a device is refused with UnsafePathError (one line)."""
    p = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_EXCL if exclusive else (os.O_APPEND if append else 0)
    try:
        fd = os.open(p, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EEXIST and p.is_symlink()):   # a symbolic link there
            raise UnsafePathError(p, "is a symbolic link; not written through (remove it or choose another "
                                     "folder)") from None
        if e.errno == errno.ENXIO:           # a FIFO nobody reads
            raise UnsafePathError(p, "is not a regular file; not written") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(p, "is not a regular file; not written")
        os.set_blocking(fd, True)
        if not append and not exclusive:
            os.ftruncate(fd, 0)              # truncated only once we know it is a regular file of ours to write
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, ("a" if append else "w") + ("b" if binary else ""), **({} if binary else
                                                                                 {"encoding": "utf-8", "newline": newline}))


def write_text(path: str | os.PathLike, text: str, exclusive: bool = False) -> None:
    """``Path.write_text`` through open_write (no symbolic link followed; ``exclusive``: a new file)."""
    with open_write(path, exclusive=exclusive) as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike, data: bytes, exclusive: bool = False) -> None:
    with open_write(path, exclusive=exclusive, binary=True) as fh:
        fh.write(data)


def replace(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """The one atomic writer: ``write(binary file)`` into a temporary file created exclusively in
    ``path``'s folder, fsynced, then renamed onto ``path`` (a rename replaces a link there, it never
    writes through one). A kill or a full disk never leaves a truncated file under a name that
    looks complete, and the temporary file never outlives a failure."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def replace_text(path: str | os.PathLike, text: str) -> None:
    """``text`` (UTF-8, line endings as given) onto ``path`` atomically (replace)."""
    replace(path, lambda fh: fh.write(text.encode("utf-8")))
