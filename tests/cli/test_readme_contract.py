"""The README cannot drift from the code.

Two checks, both against the Click definitions (nothing is run):

- every option in a README option table (a table whose first column is ``option``) exists on the
  command the section is about, with the default the table (or a ``(default X)`` in its meaning)
  documents;
- every ``netkit ...`` command line in the README's shell code blocks parses: command path,
  options and argument types, through ``make_context`` with resilient parsing off. Pipes, ``&&``,
  ``&``, ``;``, redirections, ``\\`` continuations, ``$(netkit ...)`` and ``$ `` prompts are read as
  a shell would; synopsis lines (``[-t 10s] [-P N]``) and placeholders (``HOST:PORT``, ``N``) are
  filled with a value of the type the option takes.

The README stays a guide written for people: these tests only read it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest

from netkit.cli.context import AppContext
from netkit.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

SHELL_FENCES = {"", "sh", "bash", "shell", "console"}
#: Command lines that must not parse, each with the reason it is in the README.
SKIP_LINES: dict[str, str] = {
    "netkit latncy 127.0.0.1:22": "shows the did-you-mean answer to a mistyped command",
    "netkit measure loss 127.0.0.1:9000 --max-loss nan": "shows the two lines of a usage error",
}


# ----- reading the README --------------------------------------------------------------------------

@dataclass
class Block:
    lang: str
    start: int  # line number of the first line inside the fence (1-based)
    lines: list[str]


def code_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    current: Block | None = None
    indent = ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):  # also a fence indented inside a list item
            if current is None:
                indent = line[: len(line) - len(line.lstrip())]
                current = Block(line.strip()[3:].strip(), number + 1, [])
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.lines.append(line.removeprefix(indent))
    return blocks


@dataclass
class Table:
    line: int
    headings: list[str]  # the heading chain above the table, outermost first
    intro: str  # the prose between the nearest heading and the table
    header: list[str]
    rows: list[list[str]]


def _cells(line: str) -> list[str]:
    # A "\|" inside a cell is a literal bar (``--format table\|json``), not a column.
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def tables(text: str) -> list[Table]:
    lines = text.splitlines()
    found: list[Table] = []
    chain: list[tuple[int, str]] = []
    intro: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            chain = [(lv, h) for lv, h in chain if lv < level] + [(level, line)]
            intro = []
        elif (not in_fence and line.startswith("|") and i + 1 < len(lines)
              and re.fullmatch(r"\|[-| :]+\|", lines[i + 1].strip())):
            header = [c.lower() for c in _cells(line)]
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(_cells(lines[j]))
                j += 1
            found.append(Table(i + 1, [h for _, h in chain], " ".join(intro), header, rows))
            i = j
            continue
        elif not in_fence:
            intro.append(line)
        i += 1
    return found


# ----- the Click side ----------------------------------------------------------------------------

def command_at(path: list[str]) -> click.Command:
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="netkit")
    for word in path:
        assert isinstance(cmd, click.Group), f"{' '.join(path)}: {word!r} under a command that is no group"
        sub = cmd.get_command(ctx, word)
        assert sub is not None, f"no command 'netkit {' '.join(path)}'"
        ctx = click.Context(sub, info_name=word, parent=ctx)
        cmd = sub
    return cmd


def longest_command(words: list[str]) -> list[str]:
    """The longest prefix of ``words`` that names a command (``serve tcp HOST`` -> serve tcp)."""
    path: list[str] = []
    cmd: click.Command = cli
    ctx = click.Context(cli, info_name="netkit")
    for word in words:
        if not isinstance(cmd, click.Group):
            break
        sub = cmd.get_command(ctx, word)
        if sub is None:
            break
        path.append(word)
        ctx = click.Context(sub, info_name=word, parent=ctx)
        cmd = sub
    return path


def commands_named(text: str) -> list[list[str]]:
    """Command paths in backticked ``netkit ...`` spans, in the order written, without repeats."""
    paths: list[list[str]] = []
    for span in re.findall(r"`netkit ([^`]+)`", text):
        path = longest_command(span.split())
        if path and path not in paths:
            paths.append(path)
    return paths


def table_commands(table: Table) -> list[list[str]]:
    """The commands an option table documents.

    Named in the sentence that introduces it (``On `netkit serve tcp` and `netkit serve udp`:``), else
    in the nearest heading that names one; a table under no command's heading documents the root
    group's options (Global options).
    """
    sentences = [s for s in re.split(r"(?<=[.:])\s+", table.intro.strip()) if s]
    if sentences and sentences[-1].endswith(":"):
        named = commands_named(sentences[-1])
        if named:
            return named
    for heading in reversed(table.headings):
        named = commands_named(heading)
        if named:
            return named
    return [[]]


OPTION_TOKEN = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*(?:\.\d+)?)")  # --http1.1 as curl spells it


def option_words(cell: str) -> list[str]:
    """The option strings in a table's option cell: ``-k, --insecure``, ``--only open|failed`` ..."""
    words: list[str] = []
    for span in re.findall(r"`([^`]+)`", cell):
        for m in OPTION_TOKEN.finditer(span):
            # A token right after a space that follows an option is that option's value (``-r 10``).
            words.append(m.group(1))
    return [w for w in words if not re.fullmatch(r"-\d+\w*", w) or w in ("-4", "-6")]


def argument_words(cell: str) -> list[str]:
    """``TARGET``, ``TARGET...``: an argument's name in the option column."""
    return [m.rstrip(".") for m in re.findall(r"`([A-Z][A-Z_]*(?:\.\.\.)?)`", cell)]


def find_param(cmd: click.Command, opt: str) -> click.Parameter | None:
    for p in cmd.params:
        if isinstance(p, click.Option) and (opt in p.opts or opt in p.secondary_opts):
            return p
    return None


# ----- comparing defaults ---------------------------------------------------------------------------

#: Words a table uses for "nothing set" in its default column.
UNSET_WORDS = {"", "off", "none", "no", "-", "not set", "unset"}


def _convert(param: click.Parameter, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        return param.type.convert(value, param, None)
    except (click.BadParameter, TypeError, ValueError):
        return value


def _default(param: click.Parameter) -> Any:
    default = param.default
    if type(default).__name__ == "Sentinel":  # Click 8.3+: UNSET, no default given
        return False if isinstance(param, click.Option) and param.is_flag else None
    return default


def documented_default_problem(param: click.Parameter, documented: str) -> str | None:
    """Why ``documented`` is not ``param``'s default, or None when it is (or cannot be judged)."""
    text = documented.replace("`", "").strip()
    default = _default(param)
    unset = default is None or default is False or default == () or (
        isinstance(param, click.Option) and param.count and default in (0, None))
    if text.lower() in UNSET_WORDS:
        return None if unset or default == 0 else f"documented as unset, but the default is {default!r}"
    # "0 (none)", "10s (2s with --wait)": the value, then a note.
    value = re.split(r"\s+\(", text, maxsplit=1)[0].strip()
    if isinstance(param, click.Option) and param.is_flag:
        return None if (value.lower() in ("on", "yes", "true")) == bool(default) else \
            f"documented {text!r}, the flag's default is {default!r}"
    if default is not None and value == str(default):
        return None
    if " " in value or default is None:
        # Words ("1s or interval/4, the shorter", "system CAs", "until stopped"): a default decided at
        # run time, which Click holds as None.
        return None if unset else f"documented {text!r} as a rule, but Click has a fixed default {default!r}"
    try:
        want = param.type.convert(value, param, None)
    except (click.BadParameter, TypeError, ValueError):
        return None if unset else f"documented {text!r}, not a value of this option (default {default!r})"
    got = _convert(param, default)
    if isinstance(want, float) or isinstance(got, float):
        ok = isinstance(got, (int, float)) and isinstance(want, (int, float)) and abs(float(got) - float(want)) < 1e-9
    else:
        ok = want == got or str(want) == str(got)
    return None if ok else f"documented {text!r}, the code's default is {default!r}"


MEANING_DEFAULT = re.compile(r"\(default:? `?([^`;,)\s]+)`?[;,)]")


@dataclass
class OptionRow:
    table: Table
    row: list[str]
    commands: list[list[str]]

    @property
    def where(self) -> str:
        return f"README.md:{self.table.line} ({self.row[0]})"


def option_rows() -> Iterator[OptionRow]:
    for table in tables(README.read_text()):
        if not table.header or table.header[0] != "option":
            continue
        commands = table_commands(table)
        for row in table.rows:
            yield OptionRow(table, row, commands)


def check_row(row: OptionRow) -> list[str]:
    problems: list[str] = []
    cmds = [(path, command_at(path)) for path in row.commands]
    names = " / ".join("netkit " + " ".join(p) if p else "netkit" for p, _ in cmds)
    for arg in argument_words(row.row[0]):
        if not any(isinstance(p, click.Argument) and arg in (p.human_readable_name.removesuffix("..."),
                                                             (p.name or "").upper())
                   for _, c in cmds for p in c.params):
            problems.append(f"{row.where}: {names} has no argument {arg}")
    params: list[click.Parameter] = []
    for opt in option_words(row.row[0]):
        found = [(path, p) for path, c in cmds if (p := find_param(c, opt)) is not None]
        if not found:
            problems.append(f"{row.where}: {names} has no option {opt}")
            continue
        param = found[0][1]  # the first command the section names is the one its table describes
        if param not in params:
            params.append(param)
    header = row.table.header
    if "default" in header and len(row.row) > header.index("default"):
        documented = row.row[header.index("default")]
        # "`127.0.0.1`, `8000`" for "`--host`, `--port`": one default per option, in order.
        parts = [documented]
        if len(params) > 1:
            split = [p.strip() for p in re.split(r",\s*(?![^(]*\))", documented)]
            parts = split if len(split) == len(params) else [documented] * len(params)
        for param, part in zip(params, parts * (len(params) if len(parts) == 1 else 1), strict=False):
            problem = documented_default_problem(param, part)
            if problem:
                problems.append(f"{row.where}: {param.opts[-1] if param.opts else param.name}: {problem}")
    elif len(params) == 1 and len(row.row) > 1:
        m = MEANING_DEFAULT.search(row.row[-1])
        if m:
            problem = documented_default_problem(params[0], m.group(1))
            if problem:
                problems.append(f"{row.where}: {params[0].opts[-1]}: (in the meaning) {problem}")
    return problems


def test_the_readme_has_option_tables_for_every_command_group() -> None:
    documented = {" ".join(path) for row in option_rows() for path in row.commands}
    for name in ("", "serve tcp", "serve udp", "send tcp", "probe", "measure latency", "measure throughput",
                 "measure requests", "info connections", "monitor"):
        assert name in documented, f"no option table found for 'netkit {name}'"


def test_every_option_in_a_readme_table_exists_with_its_documented_default() -> None:
    problems = [problem for row in option_rows() for problem in check_row(row)]
    assert not problems, "\n".join(problems)


# ----- command lines in code blocks -----------------------------------------------------------------

@dataclass
class CommandLine:
    line: int
    text: str  # the whole shell line, as written
    argv: list[str]  # the words after ``netkit``
    synopsis: bool = False  # ``[-t 10s] [-P N]``: brackets, bars and placeholders are notation


SEPARATORS = {"|", "||", "&&", "&", ";", "(", ")", "{", "}", "|&"}
REDIRECTS = re.compile(r"^\d*(>>?|<<?|>&|&>)")
LEADING = {"if", "then", "else", "elif", "while", "until", "do", "!", "exec", "sudo", "time", "env", "command"}


def _logical_lines(block: Block) -> Iterator[tuple[int, str]]:
    """Lines with ``\\`` continuations joined; in a block with ``$ `` prompts, only the prompted lines."""
    prompted = any(line.startswith("$ ") for line in block.lines)
    pending, first = "", 0
    for offset, line in enumerate(block.lines):
        if prompted and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if not pending:
            first = block.start + offset
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""


def _words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|(){}<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def netkit_invocations(number: int, text: str) -> Iterator[CommandLine]:
    if re.match(r"\s*netkit\s.*\[--?\w", text):
        # A synopsis (``netkit info traffic [--interval 1s] [--count N]``): brackets and bars are
        # notation here, not shell syntax.
        yield CommandLine(number, text, text.split("  #", 1)[0].split()[1:], synopsis=True)
        return
    # ``$(netkit ...)`` inside a word runs netkit too: read it on its own, then as an opaque word.
    for inner in re.findall(r"\$\((netkit [^)]*)\)", text):
        yield from netkit_invocations(number, inner)
    outer = re.sub(r"\$\([^)]*\)", "SUBST", text)
    outer = re.sub(r"(?<=\s)\d+(?=[<>])", "", outer)  # the fd of "2>/dev/null" (the lexer would split it off)
    segment: list[str] = []
    for word in [*_words(outer), ";"]:
        if word in SEPARATORS or set(word) <= set(";&|"):
            while segment and (segment[0] in LEADING or re.fullmatch(r"[A-Za-z_]\w*=.*", segment[0])):
                segment = segment[1:]
            if segment and segment[0] == "netkit":
                argv: list[str] = []
                skip = False
                for w in segment[1:]:
                    if skip:
                        skip = False
                        continue
                    if REDIRECTS.match(w):
                        skip = not REDIRECTS.sub("", w)  # "> file": the file is the next word
                        continue
                    argv.append(w)
                yield CommandLine(number, text, argv)
            segment = []
        else:
            segment.append(word)


def readme_command_lines() -> list[CommandLine]:
    found: list[CommandLine] = []
    for block in code_blocks(README.read_text()):
        if block.lang not in SHELL_FENCES:
            continue
        for number, text in _logical_lines(block):
            if text.strip() in SKIP_LINES or re.match(r"\s*netkit:", text):  # netkit's own output
                continue
            found.extend(netkit_invocations(number, text))
    return found


PLACEHOLDER = re.compile(r"^(\[?[A-Z][A-Z0-9_]*\]?)(:\[?[A-Z][A-Z0-9_]*\]?)?(\.\.\.)?$")
SAMPLES = ("1", "1s", "127.0.0.1:9", "127.0.0.1", "lo", "x")


def _sample(param: click.Parameter | None) -> str:
    """A value of ``param``'s type, for a placeholder such as ``N``, ``HOST:PORT`` or ``NAME``."""
    if param is None:
        return "127.0.0.1:9"
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    for candidate in SAMPLES:
        try:
            param.type.convert(candidate, param, None)
        except (click.BadParameter, TypeError, ValueError):
            continue
        return candidate
    return "x"


def synopsis_to_argv(cmd: click.Command, argv: list[str]) -> list[str]:
    """``[-R | --bidir]`` -> ``-R``; ``[--state STATE]...`` -> ``--state listen``; ``HOST:PORT`` -> a target."""
    words: list[str] = []
    alternative = False
    for w in argv:
        if w == "|":
            alternative = True
            continue
        if alternative:  # the second of "A | B": one is enough to check
            alternative = False
            continue
        bare = w.strip("[]").removesuffix("...").strip("[]")
        if bare:
            words.append(bare)
    out: list[str] = []
    for i, w in enumerate(words):
        if PLACEHOLDER.match(w) and not w.startswith("-"):
            prev = find_param(cmd, words[i - 1]) if i else None
            out.append(_sample(prev if prev is not None and not getattr(prev, "is_flag", False) else None))
        else:
            out.append(w)
    return out


class _NoFileChecks:
    """Parsing must not depend on files of the reader's machine (``--cafile cert.pem``)."""

    def __enter__(self) -> None:
        self._path = click.Path.convert
        click.Path.convert = lambda self, value, param, ctx: value  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        click.Path.convert = self._path  # type: ignore[method-assign]


def parse(argv: list[str], synopsis: bool = False) -> list[str]:
    """Parse ``netkit ARGV`` down to its leaf command without running it; return the command path."""
    if synopsis:
        path = longest_command([w for w in argv if not w.startswith("-")][:3])
        argv = synopsis_to_argv(command_at(path) if path else cli, argv)
    with _NoFileChecks():
        ctx = cli.make_context("netkit", list(argv), obj=AppContext(), resilient_parsing=False)
        cmd: click.Command = cli
        walked: list[str] = []
        while isinstance(cmd, click.Group):
            # Click 8.2+ keeps the subcommand's words in _protected_args (protected_args is deprecated).
            protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
            rest = [*protected, *ctx.args]
            assert rest, f"'netkit {' '.join(argv)}' names no command under 'netkit {' '.join(walked)}'"
            name, sub, rest = cmd.resolve_command(ctx, rest)
            assert sub is not None and name is not None
            walked.append(name)
            ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)
            cmd = sub
    return walked


def test_every_skipped_line_is_still_in_the_readme_and_still_fails() -> None:
    lines = {line.text.strip(): line for line in
             (CommandLine(n, t, []) for b in code_blocks(README.read_text()) for n, t in _logical_lines(b))}
    for text, reason in SKIP_LINES.items():
        assert text in lines, f"SKIP_LINES names a line no longer in the README: {text!r} ({reason})"
        with pytest.raises(click.UsageError):
            parse(shlex.split(text)[1:])


def test_the_readme_has_command_lines_for_every_command() -> None:
    seen = set()
    for line in readme_command_lines():
        seen.add(" ".join(longest_command([w for w in line.argv if not w.startswith("-")][:3])))
    for name in ("serve tcp", "serve udp", "send tcp", "send udp", "probe", "measure latency", "measure loss",
                 "measure throughput", "measure requests", "info interfaces", "info connections", "info traffic",
                 "monitor", "selftest", "completion"):
        assert name in seen, f"no example of 'netkit {name}' found in the README's code blocks"


def test_every_netkit_line_in_the_readme_parses() -> None:
    problems = []
    for line in readme_command_lines():
        try:
            parse(line.argv, line.synopsis)
        except (click.UsageError, AssertionError) as exc:
            message = exc.format_message() if isinstance(exc, click.UsageError) else str(exc)
            problems.append(f"README.md:{line.line}: {line.text.strip()}\n    -> {message}")
    assert not problems, "\n".join(problems)


# ----- the readers above, on small cases (so a README change cannot make them read nothing) ----------

@pytest.mark.parametrize(("text", "argvs"), [
    ("netkit serve tcp &   # echo", [["serve", "tcp"]]),
    ("netkit probe --wait db:5432 && exec app", [["probe", "--wait", "db:5432"]]),
    ("printf 'x\\r\\n' | netkit send tcp 127.0.0.1:8080", [["send", "tcp", "127.0.0.1:8080"]]),
    ("mkdir -p d && netkit completion zsh > d/_netkit", [["completion", "zsh"]]),
    ('eval "$(netkit completion bash)"', [["completion", "bash"]]),
    ("if netkit -q probe h:1; then echo up; fi", [["-q", "probe", "h:1"]]),
    ("NETKIT_FORMAT=json netkit info traffic -c 1 2>/dev/null | jq .", [["info", "traffic", "-c", "1"]]),
    ("netkit: 127.0.0.1:9: connection refused", []),
    ("kill -HUP $(pidof -s netkit)", []),
    ("netkit serve tcp --port 0 >> events.jsonl", [["serve", "tcp", "--port", "0"]]),
    ("netkit info traffic [--interval 1s] [--count N]  # synopsis", [["info", "traffic", "[--interval", "1s]",
                                                                   "[--count", "N]"]]),
])
def test_shell_lines_are_read_as_a_shell_reads_them(text: str, argvs: list[list[str]]) -> None:
    assert [c.argv for c in netkit_invocations(1, text)] == argvs


def test_a_line_that_does_not_parse_is_caught() -> None:
    with pytest.raises(click.UsageError):
        parse(["probe", "127.0.0.1:22", "--retries", "many"])
    with pytest.raises(click.UsageError):
        parse(["measure", "latncy", "127.0.0.1:22"])
    with pytest.raises(click.UsageError):
        parse(["send", "tcp", "127.0.0.1:22", "--bogus"])
    assert parse(["measure", "throughput", "HOST:PORT", "[-t", "10s]", "[-R", "|", "--bidir]"], synopsis=True) == \
        ["measure", "throughput"]
    with pytest.raises(click.UsageError):
        parse(["info", "traffic", "[--count", "N]", "[--bogus]"], synopsis=True)


def test_a_wrong_default_in_a_table_is_caught() -> None:
    probe = command_at(["probe"])
    retries = find_param(probe, "--retries")
    assert retries is not None
    assert documented_default_problem(retries, "0") is None
    assert documented_default_problem(retries, "3") is not None
    timeout = find_param(probe, "--timeout")
    assert timeout is not None
    assert documented_default_problem(timeout, "`2s`") is None
    assert documented_default_problem(timeout, "5s") is not None
