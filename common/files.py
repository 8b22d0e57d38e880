"""Atomic file writing, shared by every stage.

A file is written under a temporary name in the same folder and renamed into
place with os.replace, which is atomic on POSIX: a kill at any moment leaves
either the old file or the new one, never half a file.
"""

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ArtifactError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` on success.

    suffix: ending of the temporary name, for writers that choose the format by
    extension (Keras wants ".weights.h5", imageio wants ".mp4"); by default the
    final file's own suffixes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    handle, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary_name)
    os.chmod(temporary, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the final file the usual mode
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a malformed one is an error naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: not valid JSON ({error}); delete it and rerun the stage that writes it") from error


def save_npz(path: str | os.PathLike, compression_level: int | None = 1, **arrays: np.ndarray) -> None:
    """An .npz that np.load reads, written atomically, never pickling.

    compression_level: zlib level (np.savez_compressed uses 6; level 1 makes
    files ~5% bigger and is ~4x faster to write, which is what keeps Doom
    collection close to the engine's speed), or None to store uncompressed.
    """
    compression = zipfile.ZIP_STORED if compression_level is None else zipfile.ZIP_DEFLATED
    with atomic_path(path, suffix=".npz") as temporary:
        with zipfile.ZipFile(temporary, "w", compression=compression, compresslevel=compression_level) as archive:
            for key, value in arrays.items():
                with archive.open(f"{key}.npy", "w", force_zip64=True) as handle:
                    np.lib.format.write_array(handle, np.asanyarray(value), allow_pickle=False)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (metrics logs). An append of one short line is not
    atomic in theory, so readers skip a torn last line (see read_jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(_json_line(record))


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    """Replace a JSON-lines file atomically (e.g. trimmed back to a checkpoint on resume)."""
    write_text(path, "".join(_json_line(record) for record in records))


def _json_line(record: dict) -> str:
    return json.dumps(record, sort_keys=True) + "\n"


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every complete record of a JSON-lines file ([] if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by a kill mid-write
    return records
