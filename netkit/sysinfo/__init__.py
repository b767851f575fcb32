"""psutil adapters: read the system's interfaces, sockets and counters into core models.

psutil is imported inside each function so that importing this package costs nothing until used.
Each adapter returns frozen dataclasses from ``netkit.core.sysinfo_models``; nothing here prints.
"""

from netkit.sysinfo.connections import list_connections
from netkit.sysinfo.interfaces import interface_names, list_interfaces
from netkit.sysinfo.traffic import read_counters, sample_traffic, watch_traffic

__all__ = ["interface_names", "list_connections", "list_interfaces", "read_counters", "sample_traffic", "watch_traffic"]
