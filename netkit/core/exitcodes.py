"""The one table of exit statuses every netkit command uses (see README, "Exit codes")."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    #: The check failed: unreachable, refused, loss or RTT over a threshold.
    CHECK_FAILED = 1
    #: Usage or bad input (Click's own code for usage errors).
    USAGE = 2
    #: Runtime error: cannot bind, permission denied, our own address does not resolve.
    RUNTIME = 3
    #: Interrupted by SIGINT (128 + 2), as shells report it.
    INTERRUPTED = 130
    #: stdout was closed by the reader (``| head -1``), as shells report SIGPIPE (128 + 13).
    BROKEN_PIPE = 141
