"""``docs/cli.md``: the ``gta`` command reference, rendered from its argument parser.

argparse has no public way to walk a parser, so this reads ``_actions`` and the
sub-parsers action's ``_choices_actions`` (their help lines), as sphinx-argparse does.
Usage lines are formatted at a fixed width: the page must not depend on the terminal.
"""

from __future__ import annotations

import argparse

USAGE_WIDTH = 88
_NO_VALUE = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._CountAction,
             argparse._VersionAction, argparse._StoreConstAction)

HEADER = """\
# `gta` command reference

<!-- Generated from gta's argument parser by `{regenerate}`; do not edit by hand. -->

{description}

Every command exits with status 0 on success, 2 for anything a user can cause (one
line on stderr, no traceback) and 1 for a bug; `--json` prints one JSON document on
stdout, progress goes to stderr. `gta --version` prints the version and `gta COMMAND -h`
the help below. The [user guide](index.md#commands) says what each command does in
more words; [concepts.md](concepts.md) explains the terms.
"""


def render_cli(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference page of ``parser`` (default: ``gta``'s), one section per command."""
    from . import REGENERATE

    if parser is None:
        from ..cli import build_parser

        parser = build_parser()
    commands = _subcommands(parser)
    lines = [HEADER.format(regenerate=REGENERATE, description=parser.description or "")]
    lines += [f"- [`gta {name}`](#gta-{name}): {help_}" for name, help_, _ in commands]
    for name, help_, sub in commands:
        lines += ["", f"## gta {name}", "", _sentence(help_), "", "```", _usage(sub), "```"]
        rows = [_row(action) for action in sub._actions if action.dest != "help"]
        if rows:
            lines += ["", "| argument | default | description |", "|---|---|---|", *rows]
    return "\n".join(lines) + "\n"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help line, parser) of each sub-command, in the order they were added."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _row(action: argparse.Action) -> str:
    cells = [f"`{_invocation(action)}`", _default(action), _help(action)]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _invocation(action: argparse.Action) -> str:
    """How the argument is written: ``--trials N``, ``--scheduler {dual,even}``, ``SPEC ...``."""
    value = _value(action)
    if not action.option_strings:
        return value
    if isinstance(action, _NO_VALUE):
        return ", ".join(action.option_strings)
    return ", ".join(f"{flag} {value}" for flag in action.option_strings)


def _value(action: argparse.Action) -> str:
    if action.choices is not None:
        name = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        name = action.metavar or (action.dest if not action.option_strings
                                  else action.dest.upper())
    return {"*": f"[{name} ...]", "+": f"{name} [{name} ...]", "?": f"[{name}]"}.get(
        action.nargs, name)


def _default(action: argparse.Action) -> str:
    if action.required and action.nargs not in ("*", "?"):  # argparse calls `SPEC*` required
        return "required"
    if isinstance(action, _NO_VALUE) or action.default in (None, argparse.SUPPRESS):
        return ""
    return f"`{action.default}`"


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:  # argparse's own placeholders, e.g. %(default)s
        text = text % {**vars(action), "prog": ""}
    if isinstance(action, argparse._AppendAction) and "repeatable" not in text:
        text += " (repeatable)"
    return text


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if not text or text.endswith(".") else ".")
