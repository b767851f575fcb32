"""Generate the shell completion scripts and the man pages from the Click definitions.

One command regenerates everything (run it after changing any option)::

    python -m netkit.devtools.gendocs            # rewrite completions/ and man/
    python -m netkit.devtools.gendocs --check    # exit 1 and list what differs (CI, tests)

The output is deterministic: no dates, no terminal width (roff fills the text when the page is
read; nothing is wrapped here), commands in `--help` order and options in definition order, Click's own help text
as the source. The walk goes through the lazy groups (``LazyGroup.get_command`` imports each
module), so every command and subcommand gets a page. Hand-written EXAMPLES, EXIT STATUS and
SEE ALSO live in ``netkit.devtools.mandata``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from netkit import __version__
from netkit.devtools import mandata

MAN_SECTION = "1"
COMPLETION_FILES = {"bash": "netkit.bash", "zsh": "_netkit", "fish": "netkit.fish"}


# ----- the walk ----------------------------------------------------------------------------------
@dataclass
class CommandDoc:
    """One command of the tree with the context Click would build for it."""

    path: tuple[str, ...]  # ("netkit", "measure", "latency")
    command: click.Command
    ctx: click.Context
    short_help: str
    children: list[CommandDoc] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The data key in ``mandata``: the path without "netkit" ("" for the root)."""
        return " ".join(self.path[1:])

    @property
    def page_name(self) -> str:
        return "-".join(self.path)


def _short_help(group: click.Command | None, name: str, cmd: click.Command) -> str:
    # The lazy groups carry a static one-liner (what `netkit --help` shows); prefer it.
    lazy = getattr(group, "lazy_subcommands", None) or {}
    if name in lazy:
        return lazy[name][1]
    return cmd.get_short_help_str(limit=10_000)


def walk(root: click.Command | None = None, name: str = "netkit") -> CommandDoc:
    """The whole command tree under ``root`` (default: netkit's root group)."""
    if root is None:
        from netkit.cli.main import cli

        root = cli
    ctx = click.Context(root, info_name=name, **root.context_settings)
    doc = CommandDoc((name,), root, ctx, _short_help(None, name, root))
    _walk_children(doc)
    return doc


def _walk_children(doc: CommandDoc) -> None:
    cmd = doc.command
    if not isinstance(cmd, click.Group):
        return
    for sub_name in cmd.list_commands(doc.ctx):
        sub = cmd.get_command(doc.ctx, sub_name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = click.Context(sub, info_name=sub_name, parent=doc.ctx, **sub.context_settings)
        child = CommandDoc((*doc.path, sub_name), sub, sub_ctx, _short_help(cmd, sub_name, sub))
        doc.children.append(child)
        _walk_children(child)


def iter_commands(doc: CommandDoc) -> Iterator[CommandDoc]:
    yield doc
    for child in doc.children:
        yield from iter_commands(child)


# ----- roff --------------------------------------------------------------------------------------
def roff(text: str) -> str:
    """Escape plain text for roff: backslashes, minus signs, non-ASCII, leading control chars."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\e")
        elif ch == "-":
            out.append("\\-")  # a real minus: copy-pasted options keep working
        elif ord(ch) > 126 or (ord(ch) < 32 and ch not in "\n\t"):
            out.append(f"\\[u{ord(ch):04X}]")
        else:
            out.append(ch)
    lines = "".join(out).split("\n")
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in lines)


def _bold(text: str) -> str:
    return f"\\fB{roff(text)}\\fR"


def _italic(text: str) -> str:
    return f"\\fI{roff(text)}\\fR"


def help_paragraphs(help_text: str | None) -> list[tuple[bool, str]]:
    """Click help as paragraphs: (verbatim, text). ``\\b`` marks a verbatim block, as in Click."""
    if not help_text:
        return []
    text = inspect.cleandoc(help_text).split("\f", 1)[0]
    paras = []
    for block in text.split("\n\n"):
        block = block.strip("\n")
        if not block.strip():
            continue
        if block.startswith("\b"):
            paras.append((True, block[1:].strip("\n")))
        else:
            paras.append((False, " ".join(ln.strip() for ln in block.splitlines())))
    return paras


def _paragraphs_roff(help_text: str | None) -> list[str]:
    lines: list[str] = []
    for verbatim, text in help_paragraphs(help_text):
        lines.append(".PP")
        if verbatim:
            lines += [".nf", roff(text), ".fi"]
        else:
            lines.append(roff(text))
    return lines


# ----- options -----------------------------------------------------------------------------------
def metavar(param: click.Parameter) -> str:
    """The placeholder shown after an option or for an argument (no terminal, no Click version)."""
    if param.metavar:
        return param.metavar
    t = param.type
    if isinstance(t, click.Choice):
        return (param.name or "value").strip("_").upper()
    if isinstance(t, click.IntRange):
        return "INTEGER"
    if isinstance(t, click.FloatRange):
        return "FLOAT"
    if isinstance(t, click.Path):
        return "PATH"
    if isinstance(t, click.File):
        return "FILE"
    return (t.name or "value").upper().replace(" ", "_")


def envvar_names(param: click.Parameter, ctx: click.Context) -> list[str]:
    """The environment variables Click reads for ``param`` (auto prefix included), as Click does."""
    if not isinstance(param, click.Option) or param.is_eager:
        return []  # --help and --version: documented as not settable from the environment
    if param.envvar:
        return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
    if param.allow_from_autoenv and ctx.auto_envvar_prefix and param.name:
        return [f"{ctx.auto_envvar_prefix}_{param.name.upper()}"]
    return []


def default_text(param: click.Option) -> str | None:
    """The default worth printing, or None (flags, counts, empty multiples, no default)."""
    if param.show_default is False or param.is_flag or param.count:
        return None
    if isinstance(param.show_default, str):
        return param.show_default
    default = param.default
    if callable(default):
        return "(dynamic)"
    if default is None or default == () or default == [] or repr(default) == "Sentinel.UNSET":
        return None
    if isinstance(default, (list, tuple)):
        return ", ".join(str(d) for d in default)
    return str(default)


def option_entry(param: click.Option, ctx: click.Context) -> list[str]:
    # Short options first, as Click's own --help lists them.
    names = sorted([*param.opts, *param.secondary_opts], key=lambda n: len(n) - len(n.lstrip("-")))
    tag = ", ".join(_bold(n) for n in names)
    if not param.is_flag and not param.count:
        tag += " " + _italic(metavar(param))
    extra = []
    t = param.type
    if isinstance(t, click.Choice):
        extra.append("One of: " + ", ".join(str(c) for c in t.choices) + ".")
    if isinstance(t, (click.IntRange, click.FloatRange)) and not param.count:
        lo = "" if t.min is None else str(t.min)
        hi = "" if t.max is None else str(t.max)
        if lo and hi:
            extra.append(f"Range: {lo} to {hi}.")
        elif lo:
            extra.append(f"At least {lo}.")
        elif hi:
            extra.append(f"At most {hi}.")
    d = default_text(param)
    if d is not None:
        extra.append(f"Default: {d}.")
    if param.multiple and "repeatable" not in (param.help or ""):
        extra.append("May be given more than once.")
    if param.required:
        extra.append("Required.")
    env = envvar_names(param, ctx)
    if env:
        extra.append("Environment: " + ", ".join(env) + ".")
    body = " ".join(x for x in [(param.help or "").strip(), *extra] if x)
    return [".TP", tag, roff(" ".join(body.split())) if body else ".br"]


def _synopsis(doc: CommandDoc) -> list[str]:
    pieces = []
    for p in doc.command.get_params(doc.ctx):
        if isinstance(p, click.Argument):
            mv = metavar(p)
            if p.nargs != 1 and not mv.endswith("..."):
                mv += "..."
            pieces.append(_italic(mv) if p.required else f"[{_italic(mv)}]")
    if isinstance(doc.command, click.Group):
        pieces.append(f"{_italic('COMMAND')} [{_italic('ARGS')}]...")
    return [".B " + roff(" ".join(doc.path)), f"[{_italic('OPTIONS')}]" + (" " + " ".join(pieces) if pieces else "")]


# ----- a page ------------------------------------------------------------------------------------
def render_man(doc: CommandDoc) -> str:
    """The roff source of one page."""
    data = mandata.PAGES.get(doc.key, {})
    title = doc.page_name.upper()
    lines = [
        ".\\\" Generated by `python -m netkit.devtools.gendocs` from the Click definitions. Do not edit.",
        f'.TH {roff(title)} {MAN_SECTION} "" "netkit {roff(__version__)}" "netkit manual"',
        ".nh",  # no hyphenation: option names and values must survive intact
        ".ad l",
        ".SH NAME",
        f"{roff(doc.page_name)} \\- {roff(data.get('summary', doc.short_help).rstrip('.'))}",
        ".SH SYNOPSIS",
        *_synopsis(doc),
        ".SH DESCRIPTION",
        *_paragraphs_roff(doc.command.help),
    ]
    if doc.children:
        lines.append(".SH COMMANDS")
        for child in doc.children:
            lines += [".TP", _bold(child.path[-1]),
                      f"{roff(child.short_help)} See \\fB{roff(child.page_name)}\\fR({MAN_SECTION})."]
    options = [p for p in doc.command.get_params(doc.ctx) if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines.append(".SH OPTIONS")
        for opt in options:
            lines += option_entry(opt, doc.ctx)
    env_lines = []
    if doc.ctx.auto_envvar_prefix and any(envvar_names(o, doc.ctx) for o in options):
        env_lines += [".TP", _bold(f"{doc.ctx.auto_envvar_prefix}_*"), roff(
            f"Each option above can also be set in the environment under the name given with it "
            f"({doc.ctx.auto_envvar_prefix}_ and the option's name in upper case); the command line wins. "
            "A repeatable option takes several values separated by spaces."
            + (f" For a subcommand the name includes the command path, for example "
               f"{doc.ctx.auto_envvar_prefix}_MEASURE_LATENCY_COUNT=10." if len(doc.path) == 1 else ""))]
    for name, text in data.get("environment", ()):
        env_lines += [".TP", _bold(name), roff(text)]
    if env_lines:
        lines += [".SH ENVIRONMENT", *env_lines]
    lines.append(".SH EXIT STATUS")
    for code, meaning in data.get("exit_status", mandata.DEFAULT_EXIT_STATUS):
        lines += [".TP", _bold(str(code)), roff(meaning)]
    examples = data.get("examples", ())
    if examples:
        lines.append(".SH EXAMPLES")
        for text, command in examples:
            lines += [".PP", roff(text), ".PP", ".RS 4", ".nf", roff(command), ".fi", ".RE"]
    see = [doc.path[: i + 1] for i in range(len(doc.path) - 1)]
    see_also = ["-".join(p) + f"({MAN_SECTION})" for p in see]
    see_also += ["-".join(c.path) + f"({MAN_SECTION})" for c in doc.children]
    see_also += list(data.get("see_also", ()))
    if see_also:
        lines += [".SH SEE ALSO", ",\n".join(_see_ref(s) for s in see_also)]
    return "\n".join(ln for ln in lines if ln is not None) + "\n"


def _see_ref(ref: str) -> str:
    name, _, section = ref.partition("(")
    return f"\\fB{roff(name)}\\fR({section}" if section else _bold(ref)


# ----- everything --------------------------------------------------------------------------------
def render_all(root: click.Command | None = None) -> dict[str, str]:
    """Every generated file: ``{"man/netkit.1": text, "completions/netkit.bash": text, ...}``."""
    from netkit.cli.completion import completion_script

    tree = walk(root)
    files: dict[str, str] = {}
    for doc in iter_commands(tree):
        files[f"man/{doc.page_name}.{MAN_SECTION}"] = render_man(doc)
    for shell, filename in COMPLETION_FILES.items():
        files[f"completions/{filename}"] = completion_script(shell)
    return files


def repo_root() -> Path:
    """The source tree this package lives in (an editable install: the checkout)."""
    return Path(__file__).resolve().parents[2]


def _owned(path: Path) -> bool:
    # Files in man/ and completions/ that the generator owns (so stale pages can be removed).
    return (path.parent.name == "man" and path.name.startswith("netkit") and path.suffix == f".{MAN_SECTION}") or (
        path.parent.name == "completions" and path.name in COMPLETION_FILES.values())


def differences(root_dir: Path, files: dict[str, str]) -> list[str]:
    """What differs between ``files`` and the tree: one line per missing, changed or stale file."""
    problems = []
    for rel, text in sorted(files.items()):
        path = root_dir / rel
        if not path.exists():
            problems.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {rel}")
    for sub in ("man", "completions"):
        d = root_dir / sub
        if d.is_dir():
            for path in sorted(d.iterdir()):
                rel = f"{sub}/{path.name}"
                if _owned(path) and rel not in files:
                    problems.append(f"stale: {rel}")
    return problems


def write(root_dir: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` under ``root_dir`` and remove stale generated pages; return what changed."""
    changed = differences(root_dir, files)
    for rel, text in files.items():
        path = root_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    for line in changed:
        if line.startswith("stale: "):
            (root_dir / line.removeprefix("stale: ")).unlink()
    return changed


def missing_data(root: click.Command | None = None) -> list[str]:
    """Commands without hand-written examples in ``mandata`` (a reminder, not an error)."""
    return [" ".join(d.path) for d in iter_commands(walk(root)) if not mandata.PAGES.get(d.key, {}).get("examples")]


# ----- the examples are real command lines -------------------------------------------------------
_OPERATORS = {"&&", "||", "|", ";", "(", ")", "&"}
_REDIRECTS = {">", ">>", "<", "2>", "&>"}


def example_invocations(command_text: str) -> list[list[str]]:
    """The argument lists of every ``netkit`` invocation in an example's shell text."""
    import shlex

    found: list[list[str]] = []
    for line in command_text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        i = 0
        while i < len(tokens):
            at_command = i == 0 or tokens[i - 1] in _OPERATORS
            if tokens[i] == "netkit" and at_command:
                args = []
                i += 1
                while i < len(tokens) and tokens[i] not in _OPERATORS:
                    if tokens[i] in _REDIRECTS:
                        i += 2  # the redirection and its file name
                        continue
                    args.append(tokens[i])
                    i += 1
                found.append(args)
            else:
                i += 1
    return found


def is_placeholder(cmd: click.Command) -> bool:
    """A command another change has not built yet (its help says so): its examples cannot parse."""
    return (cmd.help or "").strip().startswith("Not built yet")


def parse_invocation(args: list[str], root: click.Command | None = None) -> click.Command:
    """Parse ``netkit ARGS`` down to the leaf command as Click would (no command runs).

    Raises ``click.ClickException`` (an unknown option, a bad choice) like the real command line.
    """
    if root is None:
        from netkit.cli.main import cli

        root = cli
    ctx = root.make_context("netkit", list(args))
    cmd = root
    while isinstance(cmd, click.Group):
        # Click 8.2 renamed protected_args (8.1) to _protected_args; args holds the rest.
        protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
        rest = [*protected, *ctx.args]
        if not rest:
            break
        name, sub, rest = cmd.resolve_command(ctx, rest)
        if sub is None or name is None:  # pragma: no cover - resolve_command raises instead
            raise click.UsageError(f"no such command {rest[0]!r}")
        if is_placeholder(sub):
            return sub
        ctx = sub.make_context(name, rest, parent=ctx)
        cmd = sub
    return cmd


def example_problems(root: click.Command | None = None) -> list[str]:
    """Examples in ``mandata`` that netkit's own parser rejects (skipping unbuilt commands)."""
    problems = []
    for key, data in sorted(mandata.PAGES.items()):
        for _, command_text in data.get("examples", ()):
            for args in example_invocations(command_text):
                try:
                    parse_invocation(args, root)
                except click.ClickException as exc:
                    page = " ".join(["netkit", *key.split()])
                    problems.append(f"an example on {page}(1): netkit {' '.join(args)}: {exc.format_message()}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netkit.devtools.gendocs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when anything differs")
    parser.add_argument("--root", type=Path, default=None, help="the checkout to write into (default: this one)")
    args = parser.parse_args(argv)
    root_dir = args.root or repo_root()
    files = render_all()
    for name in missing_data():
        print(f"gendocs: note: no hand-written EXAMPLES for '{name}' (netkit/devtools/mandata.py)", file=sys.stderr)
    for line in example_problems():
        print(f"gendocs: warning: {line}", file=sys.stderr)
    if args.check:
        problems = differences(root_dir, files)
        for line in problems:
            print(line)
        if problems:
            print("gendocs: out of date; run: python -m netkit.devtools.gendocs", file=sys.stderr)
            return 1
        return 0
    for line in write(root_dir, files):
        print(f"updated {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
