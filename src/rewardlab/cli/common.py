"""What every CLI command module shares: the two consoles, ``fail`` and ``log``.

- ``console`` (stdout) carries a command's results; ``err_console`` (stderr) carries errors.
- Neither hard-wraps text when its stream is not a terminal (a file, a pipe, a CI log): a message
  stays on one line there (``soft_wrap``); in a terminal, rich wraps to the terminal's width.
- ``fail(err)`` prints ``error: <message>`` on stderr and exits with status 2, the exit status
  of every handled user mistake (bad data, bad config, a wrong ``--model``); always one line.
- Option values are checked where the options are declared, before a command runs: ranges as
  Typer's ``min=``/``max=``, choices as ``Literal``; every float option must be finite (``App``
  checks it for every command). Typer's own usage errors are printed as one ``error:`` line too
  (``one_line_usage_errors``), naming the option and the value given.
- Outputs are checked before the work by the helpers of ``rewardlab.cli.outputs`` (re-exported
  here): ``output_file``, ``output_dir``, ``writable_dir``, ``remove_results``; ``OverwriteOpt``
  is the ``--overwrite`` option of every command that refuses to replace an earlier result.

Command modules (``cli/*.py``) import from here::

    from rewardlab.cli.common import console, err_console, fail, log
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sys
import types
import typing
from typing import Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from rewardlab.cli.outputs import output_dir, output_file, remove_results, writable_dir  # noqa: F401 - re-exported

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


def one_line(text: str) -> str:
    """A message on one line: the lines of a multi-line message joined by '; ' (pure)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines)


def _print_error(text: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(one_line(text))}", highlight=False)


def fail(err: Exception | str) -> NoReturn:
    """Print ``error: <err>`` on stderr, on one line, and exit with status 2 (no traceback)."""
    _print_error(str(err))
    raise typer.Exit(EXIT_USAGE)


OverwriteOpt = Annotated[bool, typer.Option(
    help="Replace the results of an earlier run at the output path (otherwise they are an error).")]


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
    """``typer.Typer`` whose commands' help is their docstring with paragraphs unwrapped, and whose
    float options must be finite (both at registration, so it covers every module's
    ``app.command()(fn)``)."""

    def command(self, name=None, *, help=None, **kwargs):  # noqa: A002 - Typer's keyword
        register = super().command

        def decorator(fn):
            text = help if help is not None else unwrap_paragraphs(fn.__doc__)
            return register(name, help=text, **kwargs)(finite_floats(fn))

        return decorator


def _float_options(fn) -> dict[str, str]:
    """``{parameter: option name}`` of a command's float options (plain, optional or repeated)."""
    hints = typing.get_type_hints(fn, include_extras=True)
    found = {}
    for pname in inspect.signature(fn).parameters:
        hint, decls = hints.get(pname), ()
        if typing.get_origin(hint) is Annotated:
            hint, *meta = typing.get_args(hint)
            decls = next((getattr(m, "param_decls", ()) for m in meta if hasattr(m, "param_decls")), ())
        while typing.get_origin(hint) in (typing.Union, types.UnionType, list, tuple):
            args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
            if len(args) != 1:
                break
            hint = args[0]
        if hint is float:
            found[pname] = next((d for d in decls if d.startswith("--")), "--" + pname.rstrip("_").replace("_", "-"))
    return found


def finite_floats(fn):
    """``fn`` refusing NaN and infinite values of its float options (one ``error:`` line, exit 2)."""
    options = _float_options(fn)
    if not options:
        return fn

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any):
        for pname, option in options.items():
            value = kwargs.get(pname)
            for x in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(x, float) and not math.isfinite(x):
                    fail(f"{option}: expected a finite number, got {x}")
        return fn(*args, **kwargs)

    return checked


# ------------------------------------------------------------------ Typer's usage errors on one line
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


def _not_finite(x: Any) -> bool:
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def usage_error_text(e: Exception) -> str:
    """One line for a Typer/click usage error: the option, what it expects and the value given
    (range checks of ``min=``/``max=``, choices, numbers that do not parse); other usage errors
    (a missing or unknown option) in click's words with a pointer to ``--help`` (pure)."""
    param, cause = getattr(e, "param", None), e.__cause__
    errors = getattr(cause, "errors", None)
    if param is not None and callable(errors):
        first = errors()[0]
        kind, ctx, given = first.get("type", ""), first.get("ctx") or {}, first.get("input")
        name = (param.opts[0] if getattr(param, "param_type_name", "") == "option" and param.opts
                else param.human_readable_name)
        if kind in _BOUNDS:
            op, key = _BOUNDS[kind]
            bound = ctx.get(key)
            number = "an integer" if isinstance(bound, int) and not isinstance(bound, bool) else "a number"
            if _not_finite(given):  # NaN fails every comparison: say what is wrong with it
                number = "a finite number"
            low, high = getattr(param, "min", None), getattr(param, "max", None)
            if low is not None and high is not None:  # both ends declared: say the range
                what = f"{number} from {_num(low)} to {_num(high)}"
            else:
                what = f"{number} {op} {_num(bound)}"
        elif kind.startswith("int_"):
            what = "an integer"
        elif kind.startswith("float_"):
            what = "a number"
        elif kind == "value_error" and "error" in ctx:
            return f"{name}: {ctx['error']}".rstrip(".")
        else:
            what = first.get("msg", str(e))
        return f"{name}: expected {what}, got {given}"
    text = e.format_message() if hasattr(e, "format_message") else str(e)
    ctx = getattr(e, "ctx", None)
    if ctx is not None and getattr(ctx, "command_path", None):
        text = f"{text.rstrip('.')} (see '{ctx.command_path} --help')"
    return text


def one_line_usage_errors() -> None:
    """Print Typer's usage errors (a value out of range, a missing option) as one ``error:`` line
    on stderr, as ``fail`` prints every other mistake, instead of usage + hint + a boxed panel.
    Typer prints them through ``rich_utils.rich_format_error``; on a Typer without it nothing
    changes. ``no_args_is_help`` still prints the help."""
    try:
        from typer import rich_utils
    except ImportError:  # pragma: no cover - Typer without rich
        return
    original = getattr(rich_utils, "rich_format_error", None)
    if original is None or getattr(original, "_rewardlab_one_line", False):
        return

    def rich_format_error(self) -> None:  # noqa: ANN001 - Typer's signature
        if type(self).__name__ == "NoArgsIsHelpError":
            return original(self)
        _print_error(usage_error_text(self))

    rich_format_error._rewardlab_one_line = True
    rich_utils.rich_format_error = rich_format_error


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
    """``<list[str]>`` -> ``TEXT ...``, ``<int>`` -> ``INTEGER``, ``<a|b>`` -> ``a|b``, a declared
    range ``<int range>`` -> ``INTEGER`` (Typer shows the bounds beside it: ``[x>=1]``) (pure)."""
    inner = label[1:-1] if label.startswith("<") and label.endswith(">") else label
    if inner.endswith(" range") and inner[:-6] in _WORDS:
        inner = inner[:-6]
    repeat = inner.startswith("list[") and inner.endswith("]")
    if repeat:
        inner = inner[5:-1]
    word = _WORDS.get(inner, inner)
    return f"{word} ..." if repeat else word
