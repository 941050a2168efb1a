"""Files only the current user may touch: the local server's data directory, its URL file and
the secrets kept there (the server password, the demo's signing secret).

Another local user must neither read them (the URL and the secrets carry passwords) nor plant
them (a URL file chosen by someone else decides which server the CLI talks to). So a directory
must belong to the current user and be writable by no one else, and a secret file must belong
to the current user with no access for group or others; anything else is refused with an
`UnsafePathError` naming the path and the fix.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "UnsafePathError",
    "check_dir",
    "private_dir",
    "read_private",
    "secret_file",
    "write_private",
]


class UnsafePathError(RuntimeError):
    """A directory or file that another user owns, or could have written, was refused."""


def _check(path: Path, st: os.stat_result, *, kind: str, secret: bool) -> None:
    uid = os.getuid()
    if st.st_uid != uid:
        raise UnsafePathError(
            f"{kind} {path} belongs to uid {st.st_uid}, not to you (uid {uid}): another user may "
            f"have planted it; remove it, or use another directory"
        )
    mode = stat.S_IMODE(st.st_mode)
    if secret and mode & 0o077:
        raise UnsafePathError(
            f"{kind} {path} is open to other users (mode {mode:o}): check it was not changed, "
            f"then `chmod 600 {path}` (or remove it)"
        )
    if mode & 0o022:
        raise UnsafePathError(
            f"{kind} {path} is writable by other users (mode {mode:o}): check what is in it, "
            f"then `chmod 700 {path}`, or use another directory"
        )


def check_dir(path: str | os.PathLike[str]) -> Path:
    """Refuse `path` unless it is a directory of the current user that no one else can write.

    Raises:
        UnsafePathError: it belongs to someone else or is group/other-writable.
        OSError: it does not exist or is not a directory.
    """
    directory = Path(path)
    st = directory.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"not a directory: {directory}")
    _check(directory, st, kind="directory", secret=False)
    return directory


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` with mode 0700 (and its parents), or check an existing one (`check_dir`)
    and take group and other access away from it.

    Raises:
        UnsafePathError: it belongs to someone else or is group/other-writable.
    """
    directory = Path(path)
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        check_dir(directory)
    # Exact mode: mkdir applies the umask, and an older directory may be 0755.
    directory.chmod(0o700)
    return directory


def read_private(path: str | os.PathLike[str]) -> str | None:
    """The stripped text of a secret file of the current user (mode 0600 or stricter) in a
    directory only the user can write, None when it does not exist.

    Raises:
        UnsafePathError: the file or its directory fails the checks.
    """
    file = Path(path)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symbolic link, which someone else may have made
        raise UnsafePathError(f"cannot read {file} safely ({exc.strerror}): remove it") from None
    with os.fdopen(fd) as handle:
        # Checked on the open descriptor: the file read is the file checked.
        _check(file, os.fstat(fd), kind="file", secret=True)
        check_dir(file.parent)
        return handle.read().strip()


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` with mode 0600 (replacing a file of the current user)."""
    file = Path(path)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        # Truncated only once it is known to be ours.
        _check(file, os.fstat(fd), kind="file", secret=False)
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        handle.write(text)


def secret_file(path: str | os.PathLike[str], nbytes: int = 32) -> str:
    """The secret kept in `path`, created (mode 0600, ``token_urlsafe(nbytes)``) when missing,
    so that it stays the same across restarts.

    Raises:
        UnsafePathError: an existing file fails the checks of `read_private`.
    """
    file = Path(path)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
    value = read_private(file)
    if not value:
        raise UnsafePathError(f"secret file {file} is empty: remove it to get a new secret")
    return value
