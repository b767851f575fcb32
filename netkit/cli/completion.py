"""``netkit completion bash|zsh|fish``: print the shell completion script.

The scripts call ``netkit`` back with ``_NETKIT_COMPLETE=<protocol>_complete`` on each TAB (Click's
shell completion), so they never go stale when options change; choices (formats, modes, methods, states)
complete from the Click types, and ``--interface`` from the system's interface names. The same
text is committed under ``completions/`` by ``python -m netkit.devtools.gendocs``.
"""

from __future__ import annotations

from typing import Any

import click

from netkit.cli.params import Choice

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_NETKIT_COMPLETE"
#: Where each shell looks for a completion file (shown in the help and in the scripts' header).
INSTALL_HINTS = {
    "bash": "netkit completion bash > ~/.local/share/bash-completion/completions/netkit",
    "zsh": "netkit completion zsh > ~/.zfunc/_netkit   (with fpath+=(~/.zfunc) before compinit in ~/.zshrc)",
    "fish": "netkit completion fish > ~/.config/fish/completions/netkit.fish",
}


# fish: netkit's own script. Click's fish script and its fish_complete reply format changed in
# Click 8.4.0 and broke (pallets/click#3502, fixed in 8.4.2), so this one speaks Click's zsh
# protocol instead, unchanged since Click 8.0: three lines per candidate (type, value, help or
# "_"), with ":" escaped in values that carry help. The committed file is then the same whatever
# Click version generated it, and works with every Click netkit allows.
_FISH_TEMPLATE = """\
function %(func)s
    set -l tokens (commandline -opc)
    set -l current (commandline -ct)
    set -l words (string join ' ' -- (string escape -- $tokens $current))
    set -l response (env %(var)s=zsh_complete COMP_WORDS="$words" COMP_CWORD=(count $tokens) %(prog)s 2>/dev/null)
    set -l n (count $response)
    set -l i 1
    while test (math $i + 2) -le $n
        set -l kind $response[$i]
        set -l value $response[(math $i + 1)]
        set -l help $response[(math $i + 2)]
        set i (math $i + 3)
        switch $kind
            case dir
                __fish_complete_directories $current
            case file
                __fish_complete_path $current
            case plain
                if test "$help" = _
                    printf '%%s\\n' $value
                else
                    printf '%%s\\t%%s\\n' (string replace -a '\\:' ':' -- $value) $help
                end
        end
    end
end

complete --command %(prog)s --no-files --arguments '(%(func)s)'
"""


def completion_script(shell: str, prog_name: str = "netkit") -> str:
    """The completion script for ``shell``: a short header, then the script for netkit.

    bash and zsh: Click's own scripts (identical from Click 8.1 to 8.5); fish: see above.
    """
    from click.shell_completion import get_completion_class

    from netkit.cli.main import cli

    if shell == "fish":
        func = "__" + prog_name.replace("-", "_") + "_complete"
        body = _FISH_TEMPLATE % {"func": func, "var": COMPLETE_VAR, "prog": prog_name}
    else:
        cls = get_completion_class(shell)
        if cls is None:  # pragma: no cover - bash and zsh are built into Click
            raise click.UsageError(f"no completion for shell {shell!r}")
        comp = cls(cli, {}, prog_name, COMPLETE_VAR)
        # source_template % source_vars() is what .source() returns, minus Click's bash-version
        # probe (a subprocess whose only effect is a warning): the output must be the same everywhere.
        body = comp.source_template % comp.source_vars()
    header = (
        f"# {shell} completion for {prog_name}. Generated from the Click definitions by\n"
        f"# `python -m netkit.devtools.gendocs`; printed by `{prog_name} completion {shell}`.\n"
        f"# Install: {INSTALL_HINTS[shell]}\n"
    )
    body = body.strip("\n")
    if shell == "zsh":
        # compinit reads only the FIRST line of each file on fpath for its "#compdef" tag: a file
        # that opens with a comment is never registered. The tag comes first, the header after it.
        tag = f"#compdef {prog_name}"
        lines = body.split("\n")
        if lines[0].startswith("#compdef"):
            lines = lines[1:]
        return tag + "\n" + header + "\n".join(lines).lstrip("\n") + "\n"
    return header + body + "\n"


def complete_interface(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion for ``--interface``: the system's interface names (psutil).

    Other commands with an ``--interface`` option can pass ``shell_complete=complete_interface``.
    """
    from click.shell_completion import CompletionItem

    try:
        from netkit.sysinfo.interfaces import interface_names

        names = interface_names()
    except Exception:  # completion must never print a traceback into the user's prompt
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


@click.command(name="completion")
@click.argument("shell", type=Choice(SHELLS), metavar="SHELL")  # errors name SHELL, not {bash|zsh|fish}
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    Load it for this shell session:
      bash:  eval "$(netkit completion bash)"
      zsh:   eval "$(netkit completion zsh)"
      fish:  netkit completion fish | source

    \b
    Install it for good:
      bash:  netkit completion bash > ~/.local/share/bash-completion/completions/netkit
      zsh:   netkit completion zsh > ~/.zfunc/_netkit
      fish:  netkit completion fish > ~/.config/fish/completions/netkit.fish
    """
    click.echo(completion_script(shell), nl=False)
