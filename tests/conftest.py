"""Fixtures for every test. Area-specific helpers live in ``tests/support.py`` and the test modules."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import support


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no NETKIT_* or FORCE_COLOR from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("NETKIT_") or key == "FORCE_COLOR":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def no_socket_leak():
    """Assert that the test left no inet socket of this process open (psutil's own habit)."""
    before = {(c.fd, c.laddr) for c in support.inet_sockets()}
    yield
    def settled() -> bool:
        return {(c.fd, c.laddr) for c in support.inet_sockets()} <= before
    try:
        support.wait_until(settled, timeout=3.0)
    except AssertionError:
        leaked = [c for c in support.inet_sockets() if (c.fd, c.laddr) not in before]
        raise AssertionError(f"sockets left open: {leaked}") from None
