"""The ``netkit`` root group and the process entry point.

``main()`` owns the mapping from outcomes to exit statuses (``ExitCode``): no traceback ever
reaches a user; each failure is one line on stderr. Keep this module's imports to click and the
core's exit codes: it is on the start-up path of every invocation.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from netkit import __version__
from netkit.cli.context import FORMAT_CHOICES, VERBOSITY, AppContext
from netkit.cli.lazy import LazyGroup
from netkit.core.exitcodes import ExitCode

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("netkit.cli.serve:serve", "Run a TCP or UDP server: the peer for every measurement."),
    "send": ("netkit.cli.send:send", "Send a message, a file or stdin over TCP or UDP (like nc)."),
    "probe": ("netkit.cli.probe:probe", "Check reachability with retries and backoff; wait until up."),
    "measure": ("netkit.cli.measure:measure", "Measure latency, loss, throughput, load, connections."),
    "trace": ("netkit.cli.trace:trace", "Trace the path hop by hop, like mtr, without privileges."),
    "monitor": ("netkit.cli.monitor:monitor", "Probe continuously and export Prometheus metrics."),
    "mesh": ("netkit.cli.mesh:mesh", "A mesh of monitors: Prometheus config, loss/RTT matrix."),
    "info": ("netkit.cli.info:info", "Interfaces, sockets and traffic counters."),
    "selftest": ("netkit.cli.selftest:selftest", "Run every capability against netkit's own servers."),
    "completion": ("netkit.cli.completion:completion", "Print the shell completion script."),
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "NETKIT"}


@click.group(
    cls=LazyGroup,
    lazy_subcommands=COMMANDS,
    context_settings=CONTEXT_SETTINGS,
)
@click.version_option(__version__, "-V", "--version", prog_name="netkit", message="%(prog)s %(version)s",
                      allow_from_autoenv=False)
@click.option(
    "--format", "format_", type=click.Choice(FORMAT_CHOICES), default="table", show_default=True,
    envvar="NETKIT_FORMAT",  # auto_envvar_prefix would derive NETKIT_FORMAT_ from the name format_
    help="Result format on stdout: tables for people, json/jsonl/csv for scripts.",
)
@click.option("--no-color", is_flag=True, help="Disable colour (NO_COLOR is honoured too).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; only the exit status tells.")
@click.option("-v", "--verbose", count=True, type=VERBOSITY, help="More detail on stderr (repeatable).")
@click.pass_context
def cli(ctx: click.Context, format_: str, no_color: bool, quiet: bool, verbose: int) -> None:
    """netkit: network diagnostics with honest numbers.

    Results go to stdout, diagnostics to stderr. Exit status: 0 success, 1 the check failed,
    2 usage or bad input, 3 runtime error, 130 interrupted.
    """
    # run() hands in the AppContext it reads back after a failure (how much detail to show):
    # fill that one in rather than replace it.
    app = ctx.ensure_object(AppContext)
    app.format, app.quiet, app.verbose, app.no_color = format_, quiet, verbose, no_color


def _fail(message: str, code: int) -> int:
    try:
        sys.stderr.write(f"netkit: {message}\n")
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass
    return int(code)


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


#: How alike a mistyped option and a real one must be (difflib ratio, dashes set aside) to suggest it.
OPTION_HINT_CUTOFF = 0.6


def _alike(typed: str, option: str) -> float:
    import difflib

    return difflib.SequenceMatcher(None, typed.lstrip("-"), option.lstrip("-")).ratio()


def _usage_lines(exc: click.UsageError, args: list[str] | None = None, prog_name: str = "netkit") -> str:
    """A usage error: the one ``netkit: ...`` line every failure has, then where to read more.

    The hint is the second line (as in GNU tools) so that the first stays the whole reason.
    """
    line = _one_line(exc.format_message())
    no_such_command = getattr(click.exceptions, "NoSuchCommand", None)  # Click 8.4+
    if no_such_command is not None and isinstance(exc, no_such_command):
        # A plain click.Group's wording, said as LazyGroup says it (one voice whatever the group).
        line = f"no such command {exc.command_name!r}."
        if exc.possibilities:
            line += " Did you mean " + " or ".join(repr(p) for p in exc.possibilities) + "?"
    if isinstance(exc, click.NoSuchOption):
        # Click offers every option within difflib's loose default ("--bogus": "--verbose"?): keep
        # only those close to what was typed once the dashes every option shares are set aside.
        close = [p for p in exc.possibilities or () if _alike(exc.option_name, p) >= OPTION_HINT_CUTOFF]
        line = f"no such option {exc.option_name!r}."
        if close:
            line += " Did you mean " + " or ".join(repr(p) for p in close) + "?"
    # Click's parser raises some errors (an option missing its value) before any context exists.
    path = exc.ctx.command_path if exc.ctx is not None else _command_path(args, prog_name)
    return f"{line}\nTry '{path} --help' for help."


def _command_path(args: list[str] | None, prog_name: str) -> str:
    """The command the arguments name (``netkit measure latency``), found again after it failed
    (the root, when not even that much parses).

    Click's contexts are gone once an error left the command, so the arguments are walked down the
    groups as shell completion walks them (resilient parsing: no callback fails, nothing runs).
    """
    words = list(sys.argv[1:] if args is None else args)
    path = prog_name
    try:
        ctx = cli.make_context(prog_name, words, resilient_parsing=True)
        path = ctx.command_path
        while isinstance(ctx.command, click.Group):
            protected = getattr(ctx, "_protected_args", None)  # Click 8.2+; before: protected_args
            rest = [*(ctx.protected_args if protected is None else protected), *ctx.args]
            name, cmd, rest = ctx.command.resolve_command(ctx, rest)
            if cmd is None or name is None:
                break
            path = f"{ctx.command_path} {name}"
            ctx = cmd.make_context(name, rest, parent=ctx, resilient_parsing=True)
    except Exception:  # a hint is not worth a second failure: the deepest command found so far
        pass
    return path


def _quiet_broken_pipe() -> int:
    # The reader went away (``| head -1``): point stdout at /dev/null so the interpreter's
    # final flush cannot raise again, and leave without a word.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return int(ExitCode.BROKEN_PIPE)


def run(args: list[str] | None = None, prog_name: str = "netkit") -> int:
    """Run the CLI and return the exit status instead of exiting (for tests and embedding)."""
    from netkit.core.errors import NetkitError, UsageError

    # auto_envvar_prefix would let NETKIT_HELP=1 (or NETKIT_PROBE_HELP=1) turn every run into
    # --help: help is asked for on the command line only.
    for key in [k for k in os.environ if k.startswith("NETKIT_") and k.endswith("_HELP")]:
        del os.environ[key]
    # The one reading of -v/-vv/--verbose/NETKIT_VERBOSE (root or leaf): what Click parsed into it.
    app = AppContext()
    try:
        rv: Any = cli.main(args=args, prog_name=prog_name, standalone_mode=False, obj=app)
        if isinstance(rv, int):
            return rv
        return int(ExitCode.OK)
    except click.exceptions.Exit as exc:  # --help, --version
        return int(exc.exit_code)
    except SystemExit as exc:
        # Click turns EPIPE into sys.exit(1) even with standalone_mode=False: a closed stdout
        # (``| head -1``) is the quiet 141, not a failed check.
        # Click 8.5 raises it outside the except block (no __context__), but always wraps stdout
        # in its PacifyFlushWrapper first: either sign means the reader went away.
        pacified = type(sys.stdout).__name__.lstrip("_") == "PacifyFlushWrapper"  # 8.5 adds the "_"
        if isinstance(exc.__context__, BrokenPipeError) or pacified:
            return _quiet_broken_pipe()
        raise
    except click.UsageError as exc:
        if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
            try:  # a group run without a command: its help is the answer (on stderr, exit 2)
                exc.show()
            except BrokenPipeError:
                return _quiet_broken_pipe()
            return int(ExitCode.USAGE)
        return _fail(_usage_lines(exc, args, prog_name), ExitCode.USAGE)
    except click.ClickException as exc:
        return _fail(_one_line(exc.format_message()), ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code)
    except UsageError as exc:  # bad input on the command line itself: said as Click's usage errors are
        return _fail(f"{exc.message}\nTry '{_command_path(args, prog_name)} --help' for help.", exc.exit_code)
    except NetkitError as exc:
        return _fail(exc.message, exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted", ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except PermissionError as exc:
        return _fail(f"permission denied: {exc.strerror or exc}", ExitCode.RUNTIME)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}", ExitCode.RUNTIME)
    except Exception as exc:  # the last line of defence: never a traceback without -v
        if app.verbose:
            import traceback

            traceback.print_exc()
        # With -v the traceback is just above: pointing at -v again would send the user in a circle.
        hint = "please report the traceback above" if app.verbose else "please report; -v shows detail"
        return _fail(f"internal error: {type(exc).__name__}: {exc} ({hint})", ExitCode.RUNTIME)


def _reader_gone() -> bool:
    """stdout is a pipe whose reader has closed it.

    A write that the reader's exit cut short can end without an error: CPython's buffered writer
    takes the kernel's partial count and drops the rest (``--format json ... | head -c 10``). The
    pipe itself still tells: its write end polls as an error once no reader is left.
    """
    import select
    import stat

    try:
        fd = sys.stdout.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return False
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & select.POLLERR for _fd, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def main() -> None:
    code = run()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _quiet_broken_pipe()
    except (OSError, ValueError):
        pass
    # A result (or a failed check) that never reached its reader ends as every closed pipe does.
    if code in (ExitCode.OK, ExitCode.CHECK_FAILED) and _reader_gone():
        code = _quiet_broken_pipe()
    sys.exit(code)
