"""A Click group whose subcommands are imported only when used (Click docs, "Lazy loading").

``netkit --version`` and ``netkit --help`` therefore import click and nothing heavy.

A name that is no command gets a "did you mean" from the names one level down as well: a
top-level ``netkit latncy`` is a typo of ``netkit measure latency`` far more often than of any
top-level command.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import click

#: How alike a typed name and a command must be to suggest it (difflib's ratio; its own default).
SUGGEST_CUTOFF = 0.6


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy_subcommands: dict[str, tuple[str, str]] | None = None, **kw: Any):
        """``lazy_subcommands``: name -> ("module.path:attribute", "one-line help")."""
        super().__init__(*args, **kw)
        self.lazy_subcommands = lazy_subcommands or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_subcommands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, cmd_name: str) -> click.Command:
        import_path, _ = self.lazy_subcommands[cmd_name]
        modname, attr = import_path.split(":")
        cmd = getattr(importlib.import_module(modname), attr)
        if not isinstance(cmd, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{import_path} is not a click command")
        return cmd

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if (not name or name.startswith("-") or ctx.resilient_parsing
                or self.get_command(ctx, name) is not None):
            return super().resolve_command(ctx, args)
        message = f"no such command {name!r}."
        hints = self.suggestions(ctx, name)
        if hints:
            message += " Did you mean " + " or ".join(repr(h) for h in hints) + "?"
        raise click.UsageError(message, ctx)

    def suggestions(self, ctx: click.Context, typed: str) -> list[str]:
        """Command paths (relative to this group) whose last word is close to ``typed``, best first.

        Only reached after a typo, so loading the subgroups to read their names costs nothing
        that a successful run pays.
        """
        candidates: list[tuple[str, str]] = [(name, name) for name in self.list_commands(ctx)]
        for name in self.list_commands(ctx):
            try:
                sub = self.get_command(ctx, name)
            except Exception:  # a subgroup that cannot load must not turn a typo into a traceback
                continue
            if isinstance(sub, click.Group):
                sub_ctx = click.Context(sub, info_name=name, parent=ctx)
                candidates += [(child, f"{name} {child}") for child in sub.list_commands(sub_ctx)]
        scored: list[tuple[float, str]] = []
        for word, path in candidates:
            ratio = difflib.SequenceMatcher(None, typed, word).ratio()
            if ratio >= SUGGEST_CUTOFF:
                scored.append((ratio, path))
        if not scored:
            return []
        best = max(ratio for ratio, _ in scored)
        # The best match, and any as good (``netkit tcp``: both ``send tcp`` and ``serve tcp``).
        return sorted({path for ratio, path in scored if ratio == best})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List subcommands from the static help strings, without importing them."""
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy_subcommands:
                rows.append((name, self.lazy_subcommands[name][1]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
