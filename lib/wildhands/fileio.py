"""Atomic file writing: nothing is ever left half-written."""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _to_builtin(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "detach"):  # torch tensors
        return obj.detach().cpu().numpy().tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def write_json(path, data, indent: int = 1) -> Path:
    """Write ``data`` as JSON atomically (numpy arrays and tensors become lists)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, default=_to_builtin))
    return Path(path)


def write_pickle(path, data) -> Path:
    """Pickle ``data`` atomically (protocol 2 for old readers of MANO-format files)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(data, f, protocol=2)
    return Path(path)


def write_bytes(path, payload: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_obj(path, vertices, faces, comment: str = "") -> Path:
    """Write a triangle mesh as Wavefront OBJ atomically (vertices in the caller's units)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return Path(path)
