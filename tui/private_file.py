"""Writing a file that holds a visitor's bytes (maybe secrets): mode 0600, never through a link.

The exports (`requests curl --body-file`, `requests export --har`) write where the developer
says, and that may be a shared directory where someone planted a symbolic link to one of the
developer's files: the link is refused, not followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_LINK = "is a symbolic link; molehill does not write through one"


def write_private(path: Path, data: bytes) -> None:
    """Create or replace ``path`` with ``data``, readable and writable by this user only.

    Raises OSError; its ``strerror`` says what to do when ``path`` is a link or not a file.
    """
    with open_private(path) as out:
        out.write(data)


def open_private(path: Path) -> BinaryIO:
    """``path`` created or emptied, open for writing, readable and writable by this user only
    (for a file written as it goes: the HAR export). Raises OSError as write_private."""
    if path.is_symlink():  # O_NOFOLLOW below is the guard; this is for systems without it
        raise _refused(path, _LINK)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO: no wait
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path, _LINK) from None
        raise
    out = os.fdopen(fd, "wb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(path, "is not a regular file")
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # an existing file would keep its mode (0644, say)
    except BaseException:
        out.close()
        raise
    return out


def _refused(path: Path, why: str) -> OSError:
    return OSError(errno.EPERM, f"{path} {why} (remove it, or name another file)")
