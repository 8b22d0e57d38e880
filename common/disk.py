"""Disk space: refuse a stage that cannot fit what it will write, and say so clearly."""

import shutil
from pathlib import Path

from common.errors import StageError


def megabytes(size: float) -> str:
    """A byte count for people: kB, MB or GB."""
    if size < 1e6:
        return f"{size / 1e3:,.0f} kB"
    return f"{size / 1e6:,.1f} MB" if size < 1e10 else f"{size / 1e9:,.1f} GB"


def free_bytes(folder: str | Path) -> int:
    """Free bytes for this user on the file system of `folder` (or of its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists():
        folder = folder.parent
    return shutil.disk_usage(folder).free


def require_space(folder: str | Path, needed: float, what: str) -> None:
    """StageError if the file system of `folder` has less than `needed` bytes free."""
    free = free_bytes(folder)
    if needed > free:
        raise StageError(
            f"not enough disk space for {what} in {folder}: about {megabytes(needed)} needed, {megabytes(free)} free. "
            f"Free some space (or use a --run-dir on a larger disk) and rerun the same command; finished files are kept."
        )


def is_disk_full(error: BaseException) -> bool:
    import errno

    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
