"""Owner-only file modes (0600) for the files that hold the desk's data: the SQLite database and backups.

The database holds password hashes, requesters' contact details and every ticket, so no other account on
the machine should read it. Files are created with mode 0600 from the start (never created readable and
narrowed afterwards), and existing ones are narrowed with :func:`secure_sqlite_file`.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE = 0o600
#: What SQLite keeps beside a database file (WAL mode: -wal and -shm; rollback journal: -journal).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def create_private(path: Path) -> None:
    """Create ``path`` as a new, empty file with mode 0600; refuse if anything is there already (a file or a
    symbolic link: O_EXCL never follows one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)  # the umask can only have taken bits away; make the mode exactly 0600
    finally:
        os.close(fd)


def make_private(path: Path) -> bool:
    """Set mode 0600 on ``path`` if it is a regular file (or a link to one); True if the mode changed.

    A missing file is no error. A file this account does not own cannot be changed: that is logged as a
    warning rather than raised, so a database someone else set up still opens."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) == PRIVATE:
        return False
    try:
        os.chmod(path, PRIVATE)
    except PermissionError as exc:
        log.warning("cannot make %s private (mode %o): %s", path, stat.S_IMODE(st.st_mode), exc)
        return False
    return True


def secure_sqlite_file(path: Path | str, *, create: bool = False) -> None:
    """Mode 0600 for a SQLite database file and its -wal, -shm and -journal files, where they exist.

    ``create``: when the database file does not exist yet, create it empty with mode 0600 first (SQLite
    takes an empty file as a new database, and gives the files it adds beside it the database's mode), so
    the file is never readable by others, not even for a moment.
    """
    path = Path(path)
    if create and not path.exists():
        try:
            create_private(path)
        except FileExistsError:  # another process created it meanwhile: narrowed below
            pass
    make_private(path)
    for suffix in SQLITE_SIDE_FILES:
        make_private(path.with_name(path.name + suffix))
