"""Shell completion: the committed scripts are current, and bash really completes through them.

The bash tests source the committed ``completions/netkit.bash`` in a real ``bash`` subprocess, set
``COMP_WORDS``/``COMP_CWORD`` as readline would, call the completion function and read
``COMPREPLY``: the whole path a user's TAB takes (script -> ``_NETKIT_COMPLETE=bash_complete
netkit`` -> Click) runs, with ``netkit`` on PATH pointing at this interpreter.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import click
import pytest
import support

from netkit.cli.completion import SHELLS, completion_script
from netkit.devtools import gendocs

ROOT = gendocs.repo_root()


@pytest.fixture(scope="module")
def netkit_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a ``netkit`` that runs this checkout with this interpreter."""
    d = tmp_path_factory.mktemp("bin")
    exe = d / "netkit"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m netkit "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return d


def bash_complete(netkit_bin: Path, words: list[str]) -> list[str]:
    """Candidates bash would offer for ``words`` (the last word is the one being completed)."""
    bash = support.require_tool("bash")
    script = ROOT / "completions" / "netkit.bash"
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (
        f"source '{script}'\n"
        f"COMP_WORDS=({quoted})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "COMPREPLY=()\n"
        "_netkit_completion netkit\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    env = support.clean_env(PATH=f"{netkit_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([bash, "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_committed_scripts_are_current() -> None:
    files = gendocs.render_all()
    problems = [p for p in gendocs.differences(ROOT, files) if "completions/" in p]
    assert not problems, "run: python -m netkit.devtools.gendocs\n" + "\n".join(problems)


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_command_prints_the_committed_script(shell: str) -> None:
    r = support.invoke(["completion", shell])
    assert r.exit_code == 0
    assert r.stdout == completion_script(shell)
    assert r.stdout == (ROOT / "completions" / gendocs.COMPLETION_FILES[shell]).read_text()
    assert "_NETKIT_COMPLETE" in r.stdout


def test_completion_of_an_unknown_shell_is_a_usage_error() -> None:
    assert support.invoke(["completion", "tcsh"]).exit_code == 2


def test_bash_completes_a_command_name(netkit_bin: Path) -> None:
    assert bash_complete(netkit_bin, ["netkit", "meas"]) == ["measure"]
    assert {"info", "measure", "probe"} <= set(bash_complete(netkit_bin, ["netkit", ""]))


def test_bash_completes_subcommands_and_global_choices(netkit_bin: Path) -> None:
    assert bash_complete(netkit_bin, ["netkit", "info", "t"]) == ["traffic"]
    assert bash_complete(netkit_bin, ["netkit", "--format", ""]) == ["table", "json", "jsonl", "csv"]
    from netkit.core.sysinfo_models import ALL_STATES

    assert bash_complete(netkit_bin, ["netkit", "info", "connections", "--state", "l"]) == \
        [s for s in ALL_STATES if s.startswith("l")]


def test_bash_completes_interface_names(netkit_bin: Path) -> None:
    import socket

    names = [n for _, n in socket.if_nameindex()]
    got = bash_complete(netkit_bin, ["netkit", "info", "traffic", "--interface", ""])
    assert set(names) <= set(got)
    if "lo" in names:
        assert bash_complete(netkit_bin, ["netkit", "info", "traffic", "--interface", "l"]) == \
            [n for n in names if n.startswith("l")]


def _latency_method_choices() -> list[str] | None:
    from netkit.cli.main import cli

    ctx = click.Context(cli, info_name="netkit")
    measure = cli.get_command(ctx, "measure")
    if not isinstance(measure, click.Group):
        return None
    latency = measure.get_command(click.Context(measure, info_name="measure", parent=ctx), "latency")
    for p in latency.params if latency else []:
        if "--method" in getattr(p, "opts", ()) and isinstance(p.type, click.Choice):
            return [str(c) for c in p.type.choices]
    return None


def test_bash_completes_latency_methods(netkit_bin: Path) -> None:
    choices = _latency_method_choices()
    if choices is None:
        pytest.skip("netkit measure latency has no --method choice yet")
    assert bash_complete(netkit_bin, ["netkit", "measure", "latency", "--method", ""]) == choices
    assert {"tcp-connect", "tcp-echo", "udp", "icmp"} <= set(choices)
    assert bash_complete(netkit_bin, ["netkit", "measure", "latency", "--method", "tcp-"]) == \
        [c for c in choices if c.startswith("tcp-")]


def fish_complete(netkit_bin: Path, line: str) -> list[str]:
    """What fish offers for ``line`` (``complete -C``), through the committed fish script."""
    fish = support.require_tool("fish")
    script = ROOT / "completions" / "netkit.fish"
    env = support.clean_env(PATH=f"{netkit_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([fish, "--no-config", "-c", f"source '{script}'; complete -C {shlex.quote(line)}"],
                          capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.splitlines()


def test_fish_completes_commands_with_descriptions_and_choices(netkit_bin: Path) -> None:
    assert fish_complete(netkit_bin, "netkit meas") == ["measure\tLatency, loss, throughput, RPM, HTTP, DNS."]
    assert fish_complete(netkit_bin, "netkit --format j") == ["json", "jsonl"]
    assert "lo" in fish_complete(netkit_bin, "netkit info traffic --interface ")
    choices = _latency_method_choices()
    if choices is not None:
        assert sorted(fish_complete(netkit_bin, "netkit measure latency --method ")) == sorted(choices)


def zsh_complete(netkit_bin: Path, words: list[str]) -> list[str]:
    """Candidates of the committed zsh script, with zsh's completion builtins stubbed to print.

    A real zsh completion needs an interactive line editor; the stubs let the script's own code
    (the call back into netkit and the parsing of its answer) run as it would.
    """
    zsh = support.require_tool("zsh")
    script = ROOT / "completions" / "_netkit"
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (
        "compdef() { : }\n"
        "_describe() { local name=$3; print -rl -- \"${(@P)name}\" }\n"
        "compadd() { local name=$5; print -rl -- \"${(@P)name}\" }\n"
        f"source '{script}'\n"
        f"words=({quoted}); CURRENT={len(words)}\n"
        "_netkit_completion\n"
    )
    env = support.clean_env(PATH=f"{netkit_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout.splitlines()


def test_zsh_completes_commands_with_descriptions_and_choices(netkit_bin: Path) -> None:
    assert zsh_complete(netkit_bin, ["netkit", "meas"]) == ["measure:Latency, loss, throughput, RPM, HTTP, DNS."]
    assert zsh_complete(netkit_bin, ["netkit", "--format", ""]) == ["table", "json", "jsonl", "csv"]
    choices = _latency_method_choices()
    if choices is not None:
        assert zsh_complete(netkit_bin, ["netkit", "measure", "latency", "--method", ""]) == choices


@pytest.mark.parametrize(("shell", "check"), [("zsh", ["zsh", "-n"]), ("fish", ["fish", "--no-execute"])])
def test_other_shells_parse_their_script(shell: str, check: list[str]) -> None:
    if shutil.which(check[0]) is None:
        pytest.skip(f"{check[0]} is not installed")
    path = ROOT / "completions" / gendocs.COMPLETION_FILES[shell]
    proc = subprocess.run([*check, str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_zsh_protocol_returns_described_candidates() -> None:
    """zsh and fish use the same callback with another protocol; check zsh's carries help text."""
    env = support.clean_env(_NETKIT_COMPLETE="zsh_complete", COMP_WORDS="netkit info con", COMP_CWORD="2")
    proc = subprocess.run(support.netkit_cmd(), capture_output=True, text=True, timeout=30, env=env)
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["plain", "connections"] and "sockets" in lines[2]


# ----- each shell loads the file the way it loads an installed one ------------------------------

def _path_with(netkit_bin: Path) -> dict[str, str]:
    return support.clean_env(PATH=f"{netkit_bin}{os.pathsep}{os.environ.get('PATH', '')}")


def test_zsh_file_starts_with_its_compdef_tag() -> None:
    """compinit reads only the first line of each file on fpath: the tag must be that line."""
    text = (ROOT / "completions" / "_netkit").read_text()
    assert text.splitlines()[0] == "#compdef netkit"
    assert completion_script("zsh").splitlines()[0] == "#compdef netkit"
    assert text.count("#compdef") == 1


def test_zsh_compinit_registers_the_file_from_fpath_and_it_completes(netkit_bin: Path, tmp_path: Path) -> None:
    """``fpath+=(dir); autoload -U compinit; compinit``: what a user's ~/.zshrc does.

    compinit must map ``netkit`` to ``_netkit`` (``$_comps``); calling that autoloaded function
    then runs the script's autoload branch, with zsh's completion builtins stubbed to print.
    """
    zsh = support.require_tool("zsh")
    program = (
        f"fpath=('{ROOT / 'completions'}' $fpath)\n"
        f"autoload -U compinit; compinit -u -D -d '{tmp_path / 'zcompdump'}'\n"
        "print -r -- \"registered=$_comps[netkit]\"\n"
        "compadd() { local name=$5; print -rl -- \"${(@P)name}\" }\n"
        "_describe() { local name=$3; print -rl -- \"${(@P)name}\" }\n"
        "words=(netkit meas); CURRENT=2\n"
        "$_comps[netkit]\n"
    )
    proc = subprocess.run([zsh, "-f", "-c", program], capture_output=True, text=True, timeout=30,
                          env=_path_with(netkit_bin))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["registered=_netkit", "measure:Latency, loss, throughput, RPM, HTTP, DNS."]


def test_bash_source_registers_the_completion(netkit_bin: Path) -> None:
    bash = support.require_tool("bash")
    script = ROOT / "completions" / "netkit.bash"
    proc = subprocess.run([bash, "--norc", "--noprofile", "-c", f"source '{script}' && complete -p netkit"],
                          capture_output=True, text=True, timeout=30, env=_path_with(netkit_bin))
    assert proc.returncode == 0, proc.stderr
    assert "-F _netkit_completion" in proc.stdout and proc.stdout.rstrip().endswith(" netkit")


def test_fish_loads_the_file_from_its_completion_path(netkit_bin: Path) -> None:
    """Not sourced: fish finds ``netkit.fish`` on ``$fish_complete_path`` by itself, as once installed."""
    fish = support.require_tool("fish")
    program = f"set -p fish_complete_path '{ROOT / 'completions'}'; complete -C 'netkit mea'"
    proc = subprocess.run([fish, "--no-config", "-c", program], capture_output=True, text=True, timeout=30,
                          env=_path_with(netkit_bin))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()] == ["measure"]


def test_an_unknown_shell_is_named_shell_with_a_hint() -> None:
    r = support.invoke(["completion", "zhs"])
    assert r.exit_code == 2
    first = r.stderr.splitlines()[0]
    assert "'SHELL'" in first and "{bash|zsh|fish}" not in first and first.endswith("Did you mean 'zsh'?")
