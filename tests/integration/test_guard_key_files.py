"""Where a server's measurement key comes from: --key, --key-file, NETKIT_KEY (reads files)."""

from __future__ import annotations

import os

import pytest

from netkit.core import keyed
from netkit.core.errors import InputError
from netkit.io.servers import server_guard as sg


def test_load_key_precedence(tmp_path: os.PathLike) -> None:
    f = os.path.join(tmp_path, "k")
    with open(f, "w") as fh:
        fh.write("from-file\n")
    assert sg.load_key("a", f, {"NETKIT_KEY": "e"}) == keyed.derive_key("a")
    assert sg.load_key(None, f, {"NETKIT_KEY": "e"}) == keyed.derive_key("from-file")
    assert sg.load_key(None, None, {"NETKIT_KEY": "e"}) == keyed.derive_key("e")
    assert sg.load_key(None, None, {}) is None
    with pytest.raises(InputError, match="empty"):
        sg.load_key("  ", None, {})
    with pytest.raises(InputError, match="cannot read"):
        sg.load_key(None, f + ".missing", {})
