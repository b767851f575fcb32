"""netkit: network diagnostics toolkit.

The package root stays import-light on purpose: ``netkit --version`` must not pull in
rich, asyncio or psutil. Capabilities live in submodules and are imported on demand.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
