"""What every CLI command module shares: the two consoles, ``fail`` and ``log``.

- ``console`` (stdout) carries a command's results; ``err_console`` (stderr) carries errors.
- Neither hard-wraps text when its stream is not a terminal (a file, a pipe, a CI log): a message
  stays on one line there (``soft_wrap``); in a terminal, rich wraps to the terminal's width.
- ``fail(err)`` prints ``error: <message>`` on stderr and exits with status 2, the exit status
  of every handled user mistake (bad data, bad config, a wrong ``--model``).

Command modules (``cli/*.py``) import from here::

    from rewardlab.cli.common import console, err_console, fail, log
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn, TextIO

import typer
from rich.console import Console
from rich.markup import escape

EXIT_USAGE = 2  # a handled user mistake (bad input, bad config, bad option value)


NON_TERMINAL_WIDTH = 160  # tables in a file, a pipe or a CI log: wide enough for eval's score tables


def _console(stream: TextIO, stderr: bool) -> Console:
    # Not a terminal: no wrapping at rich's default 80 columns (one message, one line), and tables
    # laid out for NON_TERMINAL_WIDTH columns (unless COLUMNS says otherwise).
    tty = stream.isatty()
    width = None if tty or os.environ.get("COLUMNS") else NON_TERMINAL_WIDTH
    return Console(stderr=stderr, soft_wrap=not tty, highlight=False, width=width)


console = _console(sys.stdout, stderr=False)
err_console = _console(sys.stderr, stderr=True)


def fail(err: Exception | str) -> NoReturn:
    """Print ``error: <err>`` on stderr and exit with status 2 (no traceback)."""
    err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
    raise typer.Exit(EXIT_USAGE)


def log(message: str) -> None:
    """A progress message of a command (stdout, as its results); printed as is (no markup)."""
    console.print(message, highlight=False, markup=False)


def unwrap_paragraphs(doc: str | None) -> str | None:
    """A docstring with each paragraph on one line (paragraphs stay apart), for help texts (pure).

    Typer's rich help keeps the source's line breaks inside a paragraph, so a docstring wrapped at
    the source's width would break mid-sentence in ``--help``; the terminal wraps it instead.
    """
    if doc is None:
        return None
    import inspect

    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines() if line.strip()) for p in paragraphs)


class App(typer.Typer):
    """``typer.Typer`` whose commands' help is their docstring with paragraphs unwrapped (at
    registration, so it covers every module's ``app.command()(fn)``)."""

    def command(self, name=None, *, help=None, **kwargs):  # noqa: A002 - Typer's keyword
        register = super().command

        def decorator(fn):
            text = help if help is not None else unwrap_paragraphs(fn.__doc__)
            return register(name, help=text, **kwargs)(fn)

        return decorator


def plain_help_types() -> None:
    """Show option types in ``--help`` as words (TEXT, INTEGER, PATH), not Python tags.

    Typer >= 0.20 labels a parameter's type with its annotation (``<bool>``, ``<list[str]>``,
    ``<path>``), which reads like Python to a user. Its public hook is a ``metavar`` on every single
    option; one override of the type label here covers every command, including the ones other
    modules register. Flags (``--resume/--no-resume``) show no type; repeatable options say
    ``TEXT ...``. Does nothing on a Typer without this method (older versions already print words).
    """
    import typer.core as tc

    base = getattr(tc, "_TyperParameter", None)
    if base is None or not hasattr(base, "display_type") or getattr(base, "_rewardlab_plain", False):
        return
    original = base.display_type

    def display_type(self, ctx):  # noqa: ANN001 - Typer's signature
        if getattr(self, "is_flag", False):
            return ""
        label = original(self, ctx)
        return plain_type_label(label) if isinstance(label, str) else label

    base.display_type = display_type
    base._rewardlab_plain = True


_WORDS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN", "path": "PATH",
          "file": "FILE", "directory": "DIRECTORY", "Path": "PATH"}


def plain_type_label(label: str) -> str:
    """``<list[str]>`` -> ``TEXT ...``, ``<int>`` -> ``INTEGER``, ``<a|b>`` -> ``a|b`` (pure)."""
    inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    repeat = inner.startswith("list[") and inner.endswith("]")
    if repeat:
        inner = inner[5:-1]
    word = _WORDS.get(inner, inner)
    return f"{word} ..." if repeat else word
