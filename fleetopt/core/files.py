"""Files: every output path is checked before any work and written all or nothing; TOML input.

Every file the CLI writes goes through :func:`check_output_path` (before any work) and
:func:`write_output` (a temporary file in the target's folder, renamed over it). Every TOML file
fleetopt reads (configs, sweeps, catalogs) goes through :func:`read_toml`.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from fleetopt.core.errors import FleetoptError

__all__ = ["STDOUT", "check_output_path", "check_outputs", "read_toml", "write_output"]

#: ``--out -``: write to standard output
STDOUT = "-"



_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str | None:
    for test, name in _KINDS:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_output_path(path: str | Path, flag: str = "--out", *,
                      allow_stdout: bool = True) -> Path | None:
    """Check that ``path`` can be written, before any work is done.

    Returns the real target (symlinks resolved: writing replaces the target, never the link),
    or ``None`` for ``-`` (standard output; refused unless ``allow_stdout``). A directory, FIFO,
    device node or socket is refused, as are a read-only file, a missing folder and a folder
    fleetopt cannot create files in: a :class:`FleetoptError` on ``flag``.
    """
    given = str(path)
    if given == STDOUT:
        if not allow_stdout:
            raise FleetoptError(flag, "'-' (standard output) is not possible here; give a file")
        return None
    if not given:
        raise FleetoptError(flag, "empty path; give a file")
    real = Path(os.path.realpath(given))
    via = f" (the target of {given})" if str(real) != str(Path(given).absolute()) else ""
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise FleetoptError(flag, f"{given}: a folder on the path is a file") from None
    except OSError as e:
        raise FleetoptError(flag, f"cannot use {given}: {e.strerror}") from None
    if st is not None:
        kind = _kind(st.st_mode)
        if kind is not None:
            hint = ("give a file path inside it" if kind == "a directory" else
                    "fleetopt writes regular files only; give a file path"
                    + (" (or - for standard output)" if allow_stdout else ""))
            raise FleetoptError(flag, f"{real}{via} is {kind}; {hint}")
        if not os.access(real, os.W_OK):
            raise FleetoptError(flag, f"{real}{via} is read-only; make it writable or give "
                                "another path")
    folder = real.parent
    if not folder.is_dir():
        raise FleetoptError(flag, f"folder {folder}{via} does not exist; create it first")
    # the file is written as a temporary file in its own folder and renamed: probe that
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as e:
        raise FleetoptError(flag, f"cannot write in folder {folder}{via}: {e.strerror}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return real


def check_outputs(*outputs: tuple[Any, ...]) -> None:
    """:func:`check_output_path` for several ``(path, flag)`` or ``(path, flag, allow_stdout)``
    tuples (``None`` paths skipped); two flags naming the same file, or both ``-``, are an
    error on the second flag."""
    seen: dict[str, str] = {}
    for path, flag, *rest in outputs:
        if path is None:
            continue
        real = check_output_path(path, flag, allow_stdout=bool(rest[0]) if rest else True)
        key = STDOUT if real is None else str(real)
        if key in seen:
            raise FleetoptError(flag, f"{seen[key]} already writes to {path}; give another path")
        seen[key] = flag


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_output(path: str | Path, data: str | bytes, flag: str = "--out", *,
                 allow_stdout: bool = True) -> None:
    """Write ``data`` to ``path``: all or nothing.

    ``-`` writes to standard output. Otherwise the real target (a symlink's target) is
    written through a temporary file in the target's own folder, then renamed over it; an
    existing file keeps its permissions (and owner, where allowed), a new one gets the usual
    umask permissions. On any error or interrupt the temporary file is removed and the target
    is left as it was.
    """
    real = check_output_path(path, flag, allow_stdout=allow_stdout)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if real is None:
        sys.stdout.flush()
        buf = getattr(sys.stdout, "buffer", None)
        if buf is not None:
            buf.write(raw)
            buf.flush()
        else:  # a text-only stream (e.g. captured in tests)
            sys.stdout.write(raw.decode("utf-8", errors="replace"))
            sys.stdout.flush()
        return
    try:
        old: os.stat_result | None = os.stat(real)
    except OSError:
        old = None
    mode = stat.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_umask()
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp makes 0600
        if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(OSError):
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, real)
        tmp = None
    except OSError as e:
        raise FleetoptError(flag, f"cannot write {real}: {e.strerror}") from None
    finally:
        if tmp is not None:  # an error or an interrupt: leave nothing behind
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def read_toml(path: str | Path, field_name: str) -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or malformed file is a :class:`FleetoptError`
    on ``field_name``."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FleetoptError(field_name, f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise FleetoptError(field_name, f"{path} is not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise FleetoptError(field_name, f"{path} is not a text (UTF-8) file") from None
    except OSError as e:
        raise FleetoptError(field_name, f"cannot read {path}: {e.strerror or e}") from None
