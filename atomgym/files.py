"""Reading a file a user gave us: bounded, regular files only, one line on refusal.

Every reader of a user's file (replay records, real-kernel captures, sweep files, caches, suites,
model configs, episodes CSVs) goes through ``read_bytes`` / ``read_text`` / ``read_json`` /
``read_yaml``: a device (``/dev/zero``), a FIFO or a folder, also behind a symlink, is refused
before a byte is read (a device may never end, a FIFO may block forever); a regular file larger
than the reader's limit is refused after ``limit + 1`` bytes (never a MemoryError); text is
UTF-8 with an optional byte-order mark; JSON or YAML nested too deeply is refused in one line
(never a RecursionError). Each refusal is a ``FileError`` (a ValueError) whose message names the
file and what was expected.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MiB = 1 << 20
CHUNK = 1 << 16      # one huge read() fails with ENOMEM on /proc/sys files: read in chunks


class FileError(ValueError):
    """A user's file we cannot use; the message is one line naming the file."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"


def read_bytes(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (``what``: what the file should be,
    for the message)."""
    p = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat refuses it next)
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise FileError(f"{p}: cannot read ({e.strerror or e}); expected {what}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileError(f"{p}: cannot read: {_kind(st.st_mode)}, not a regular file; expected {what}")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        n = 0
        while n <= limit:
            b = os.read(fd, min(CHUNK, limit + 1 - n))
            if not b:
                break
            chunks.append(b)
            n += len(b)
    except OSError as e:
        raise FileError(f"{p}: cannot read ({e.strerror or e}); expected {what}") from None
    finally:
        os.close(fd)
    if n > limit:
        raise FileError(f"{p}: larger than {_size(limit)}; expected {what}")
    return b"".join(chunks)


def read_text(path: str | os.PathLike, limit: int, what: str) -> str:
    """read_bytes decoded as UTF-8 (a leading byte-order mark dropped)."""
    raw = read_bytes(path, limit, what)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FileError(f"{os.fspath(path)}: not UTF-8 text (byte {e.start}); expected {what}") from None


def parse_json(text: str, source: str, what: str) -> Any:
    """json.loads with one-line errors naming ``source`` (syntax, nesting, a > 4300-digit number)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise FileError(f"{source}: JSON nested too deeply; expected {what}") from None
    except ValueError as e:       # JSONDecodeError, and int() of a > 4300-digit number
        raise FileError(f"{source}: not JSON ({str(e).splitlines()[0]}); expected {what}") from None


def read_json(path: str | os.PathLike, limit: int, what: str) -> Any:
    return parse_json(read_text(path, limit, what), os.fspath(path), what)


def read_yaml(path: str | os.PathLike, limit: int, what: str) -> Any:
    """yaml.safe_load of a bounded file, one line on a syntax error or too deep a nesting."""
    import yaml
    text = read_text(path, limit, what)
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise FileError(f"{os.fspath(path)}: YAML nested too deeply; expected {what}") from None
    except yaml.YAMLError as e:
        raise FileError(f"{os.fspath(path)}: not valid YAML ({str(e).splitlines()[0]}); expected {what}") from None
    except ValueError as e:       # PyYAML's int() of a > 4300-digit number
        raise FileError(f"{os.fspath(path)}: not valid YAML ({str(e).splitlines()[0]}); expected {what}") from None


def is_regular(path: str | os.PathLike) -> bool:
    """A regular file (following symlinks), without opening it."""
    try:
        return stat.S_ISREG(Path(path).stat().st_mode)
    except OSError:
        return False
