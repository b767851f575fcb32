"""Config files read for the commands that take one (``monitor --config``, ``--mesh``, ``mesh``).

Errors are one line naming the file (escaped) and what is wrong with it. Kept apart from the
monitor so ``netkit mesh`` reads a mesh file without loading the monitor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from netkit.core.errors import InputError
from netkit.core.escape import safe_text

if TYPE_CHECKING:  # pragma: no cover
    from netkit.core.mesh_config import MeshConfig

#: A mesh file is a few hundred bytes a host: 1000 hosts with labels fit well within this.
MAX_MESH_FILE_BYTES = 4 << 20


def read_config_text(path: str, *, max_bytes: int | None = None, what: str = "a config file") -> str:
    """A config file's UTF-8 text (``max_bytes`` at most: a larger file is not ``what``); errors name it."""
    shown = safe_text(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{shown}: no such file") from None
    except OSError as exc:
        raise InputError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(f"{shown}: larger than {max_bytes >> 20} MiB: not {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{shown}: not UTF-8 text") from None


def load_mesh(path: str) -> MeshConfig:
    """Mesh file ``path`` read and checked; errors name the file and the key."""
    from netkit.core.mesh_config import parse_mesh

    text = read_config_text(path, max_bytes=MAX_MESH_FILE_BYTES, what="a mesh file")
    try:
        return parse_mesh(text)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
