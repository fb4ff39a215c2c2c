"""Reading the profiles file and writing it safely: fingerprints, atomic replace and a .bak copy.

Theory of operation: `load` reads the bytes once and remembers a fingerprint of them (mtime,
size, sha256). `save` writes only if the file on disk still has that fingerprint, so an edit made
meanwhile in an editor or another molehill is refused rather than overwritten. A write goes to a
temporary file in the same directory, is fsynced, then renamed over the old file (atomic on POSIX
and Windows), and the directory is fsynced so the rename itself survives a crash. The previous
bytes are kept next to it as profiles.toml.bak. A load never writes anything, and a file that
does not parse is never replaced: the user fixes it by hand.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from profiles.errors import (
    InvalidProfiles,
    ProfilesChangedOnDisk,
    ProfilesFileUnreadable,
    ProfilesFileUnwritable,
    ProfilesSyntaxError,
)
from profiles.model import ProfilesFile

HEADER = (
    "# molehill profiles. molehill writes this file (`molehill profiles ...`, the dashboard):\n"
    "# comments and formatting added here are not kept when it saves. Format: docs/profiles.md\n"
)
FILE_MODE = 0o600  # the relay token lives in this file
DIRECTORY_MODE = 0o700
BACKUP_SUFFIX = ".bak"


@dataclass(frozen=True)
class Fingerprint:
    """What the file looked like when read: changes to any of these mean "changed on disk"."""

    mtime_ns: int
    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes, stat: os.stat_result) -> Fingerprint:
        """The fingerprint of `data`, read from a file whose stat is `stat`."""
        return cls(stat.st_mtime_ns, stat.st_size, hashlib.sha256(data).hexdigest())


@dataclass(frozen=True)
class LoadedProfiles:
    """A profiles file as loaded: where from, what it holds, and its fingerprint then.

    `fingerprint` is None when there was no file; saving then refuses if one has appeared.
    """

    path: Path
    file: ProfilesFile
    fingerprint: Fingerprint | None

    def with_file(self, file: ProfilesFile) -> LoadedProfiles:
        """The same load (path and fingerprint) holding changed contents, ready to `save`."""
        return dataclasses.replace(self, file=file)

    def changed_on_disk(self) -> bool:
        """True when the file on disk no longer matches what was loaded (time to reload)."""
        return fingerprint_on_disk(self.path) != self.fingerprint


def backup_path(path: Path) -> Path:
    """Where the previous version of `path` is kept: profiles.toml -> profiles.toml.bak."""
    return path.with_name(path.name + BACKUP_SUFFIX)


def _reason(exc: OSError) -> str:
    if isinstance(exc, IsADirectoryError):
        return "it is a directory, not a file"
    if isinstance(exc, NotADirectoryError):
        return "a part of that path is a file, not a directory"
    return exc.strerror or str(exc)


def _read_current(path: Path) -> tuple[bytes, Fingerprint] | None:
    """The file's bytes and fingerprint, or None when it does not exist."""
    try:
        with open(path, "rb") as stream:
            stat = os.fstat(stream.fileno())
            data = stream.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProfilesFileUnreadable(path, _reason(exc)) from exc
    return data, Fingerprint.of(data, stat)


def fingerprint_on_disk(path: str | Path) -> Fingerprint | None:
    """The current fingerprint of the file at `path`, or None when there is no file."""
    current = _read_current(Path(path))
    return None if current is None else current[1]


# -- reading -------------------------------------------------------------------------------------

_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_END_OF_DOCUMENT = re.compile(r"\s*\(at end of document\)$")


def _syntax_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> ProfilesSyntaxError:
    lines = text.split("\n")
    detail = str(exc)
    # Python 3.14 adds lineno/colno; 3.11 only puts the position in the message.
    line: int | None = getattr(exc, "lineno", None)
    column: int | None = getattr(exc, "colno", None)
    if (match := _POSITION.search(detail)) is not None:
        line = line or int(match.group(1))
        column = column or int(match.group(2))
        detail = detail[: match.start()]
    elif (match := _END_OF_DOCUMENT.search(detail)) is not None:
        line, column = len(lines), len(lines[-1]) + 1
        detail = detail[: match.start()] + " at the end of the file"
    line = line or 1
    column = column or 1
    source = lines[line - 1] if 1 <= line <= len(lines) else None
    return ProfilesSyntaxError(path, line, column, detail, source)


def _decode_error(path: Path, data: bytes, exc: UnicodeDecodeError) -> ProfilesSyntaxError:
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    byte = data[exc.start : exc.start + 1].hex()
    detail = f"the file is not UTF-8 text (byte 0x{byte}); save it as UTF-8"
    return ProfilesSyntaxError(path, line, column, detail)


def parse_profiles(data: bytes, path: Path) -> ProfilesFile:
    """Parse and validate a profiles file's bytes; `path` is only used in error messages."""
    try:
        # utf-8-sig: tolerate the byte-order mark some Windows editors put first.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, data, exc) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, text, exc) from None
    try:
        return ProfilesFile.from_toml(document)
    except InvalidProfiles as exc:
        raise exc.in_file(path) from None


def load(path: str | Path) -> LoadedProfiles:
    """Read, parse and validate the profiles file; a missing file is an empty ProfilesFile.

    Raises ProfilesSyntaxError or InvalidProfiles (exit code 2) for bad content and
    ProfilesFileUnreadable for I/O errors. Never writes anything.
    """
    path = Path(path).absolute()
    current = _read_current(path)
    if current is None:
        return LoadedProfiles(path, ProfilesFile(), None)
    data, fingerprint = current
    return LoadedProfiles(path, parse_profiles(data, path), fingerprint)


# -- writing -------------------------------------------------------------------------------------


def render_profiles(file: ProfilesFile) -> str:
    """The text molehill writes for `file`: the header comment, then the TOML."""
    body = tomli_w.dumps(file.to_toml())
    return HEADER + ("\n" + body if body else "")


def save(data: LoadedProfiles | ProfilesFile, path: str | Path | None = None) -> LoadedProfiles:
    """Write the profiles atomically and return the new LoadedProfiles (with the new fingerprint).

    With a LoadedProfiles, the file must still be as it was loaded (ProfilesChangedOnDisk if
    not); `path` defaults to where it was loaded from. A bare ProfilesFile is written only where
    no file exists yet, as if it had been loaded from a missing file.
    """
    if isinstance(data, LoadedProfiles):
        target = data.path if path is None else Path(path).absolute()
        if target != data.path.absolute():
            raise ValueError(f"cannot save profiles loaded from {data.path} to {target}")
        file, expected = data.file, data.fingerprint
    else:
        if path is None:
            raise TypeError("save(ProfilesFile) needs a path")
        target = Path(path).absolute()
        file, expected = data, None

    encoded = render_profiles(file).encode("utf-8")
    # Follow a symlink (e.g. into a dotfiles repo): replacing the link itself would cut it.
    real = Path(os.path.realpath(target))
    _ensure_directory(real.parent, target)

    current = _read_current(real)
    actual = None if current is None else current[1]
    if actual != expected:
        raise ProfilesChangedOnDisk(target, created=expected is None, removed=actual is None)

    try:
        if current is not None:
            _write_atomically(backup_path(real), current[0])
        _write_atomically(real, encoded)
        stat = os.stat(real)
    except OSError as exc:
        raise ProfilesFileUnwritable(target, _reason(exc)) from exc
    return LoadedProfiles(target, file, Fingerprint.of(encoded, stat))


def _ensure_directory(directory: Path, target: Path) -> None:
    try:
        directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        reason = f"cannot create directory {directory}: {_reason(exc)}"
        raise ProfilesFileUnwritable(target, reason) from exc


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old bytes or the new, never a mix."""
    # Same directory, so os.replace is a rename on one filesystem (atomic); mkstemp gives 0600.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        # Interrupted (error, Ctrl-C): the old file is untouched; leave no temp file behind.
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable. Windows cannot open a directory this way; NTFS journals it."""
    if os.name == "nt":
        return
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
