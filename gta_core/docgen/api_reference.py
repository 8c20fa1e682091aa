"""``docs/api.md``: the Python API a user calls, rendered from signatures and docstrings.

:data:`SECTIONS` is the one list of what is documented. Docstrings are reST-flavoured
(````code````, ``:class:`x```, ``:param name:``); :func:`markdown` turns just those
forms into Markdown.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass

SIGNATURE_WIDTH = 88


@dataclass(frozen=True)
class Section:
    """A heading and the functions under it, each ``"module:name"``; ``"module:*"`` is every
    public function that module itself defines, in source order."""

    title: str
    intro: str
    members: tuple[str, ...]


SECTIONS = (
    Section("Operators, targets and plugins",
            "What `gta plugins`, `describe`, `mappings`, `peak` and `demo` call; each returns "
            "a pydantic model (what the command's `--json` prints).",
            ("gta_core.api:*",)),
    Section("Tuning workloads", "What `gta tune SPEC...` calls.", ("gta_core.tuning:tune",)),
    Section("Whole models",
            "A model in (ONNX or PyTorch), tuned, compiled into a library; see "
            "[networks.md](networks.md).",
            ("gta_core.frontends:load_onnx", "gta_core.frontends:from_torch",
             "gta_core.model_tuning:tune_model", "gta_core.model_compile:compile_model",
             "gta_core.model_compile:compile_specs")),
    Section("Hooks, for plugin writers",
            "A plugin implements these, marked with `hookimpl` (`from gta_core.sdk import "
            "hookimpl`); [hooks.md](hooks.md) has an example of each and "
            "[plugin-guide.md](plugin-guide.md) writes a target from nothing.",
            ("gta_core.hookspecs:*",)),
)

HEADER = """\
# Python API reference

<!-- Generated from signatures and docstrings by `{regenerate}`; do not edit by hand. -->

The functions a script calls, and the hooks a plugin implements. Names that
`import gta_core` offers directly (`gta_core.tune`) load TVM only when first used.
"""


def render_api() -> str:
    """The reference page: a heading, signature and docstring per documented function."""
    from . import REGENERATE

    lines = [HEADER.format(regenerate=REGENERATE)]
    for section in SECTIONS:
        lines += [f"## {section.title}", "", section.intro, ""]
        for name, func in documented(section):
            lines += _entry(name, func)
    return "\n".join(lines).rstrip("\n") + "\n"


def documented(section: Section) -> list[tuple[str, object]]:
    """(the name a user imports it by, the function) for each member of ``section``."""
    found = []
    for member in section.members:
        module_name, name = member.split(":")
        module = importlib.import_module(module_name)
        if name != "*":
            found.append((module_name, getattr(module, name)))
            continue
        funcs = [f for n, f in vars(module).items() if not n.startswith("_")
                 and inspect.isfunction(f) and f.__module__ == module_name]
        found += [(module_name, f) for f in sorted(funcs, key=lambda f: f.__code__.co_firstlineno)]
    return [(_public_name(f, module_name), f) for module_name, f in found]


def _public_name(func, module: str) -> str:
    import gta_core

    if getattr(gta_core, func.__name__, None) is func:  # the lazy top-level names
        return f"gta_core.{func.__name__}"
    return f"{module}.{func.__name__}"


def _entry(name: str, func) -> list[str]:
    where = f"{func.__module__}.{func.__qualname__}"
    lines = [f"### `{name}`", "", "```python", signature(func), "```", ""]
    if where != name:
        lines += [f"Defined in `{func.__module__}`.", ""]
    return lines + [markdown(inspect.getdoc(func) or "No docstring yet."), ""]


class _Text(str):
    """An annotation or default shown as written (``inspect`` would quote a string)."""

    def __repr__(self) -> str:
        return str(self)


def _shown(value) -> _Text:
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    return _Text(text)


def _default(value) -> _Text:
    text = re.sub(r" at 0x[0-9a-f]+", "", repr(value))  # no addresses: the page is stable
    return _Text(text)


def signature(func) -> str:
    """``def name(...) -> R`` as the source spells its annotations; one parameter a line
    when it does not fit in :data:`SIGNATURE_WIDTH`."""
    sig = inspect.signature(func)
    params = []
    for p in sig.parameters.values():
        changes = {}
        if p.annotation is not p.empty:
            changes["annotation"] = _shown(p.annotation)
        if p.default is not p.empty:
            changes["default"] = _default(p.default)
        params.append(str(p.replace(**changes)))
    params = _with_separators(params, list(sig.parameters.values()))
    returns = ("" if sig.return_annotation is sig.empty
               else f" -> {_shown(sig.return_annotation)}")
    one_line = f"def {func.__name__}({', '.join(params)}){returns}"
    if len(one_line) <= SIGNATURE_WIDTH:
        return one_line
    body = "".join(f"    {p},\n" for p in params)
    return f"def {func.__name__}(\n{body}){returns}"


def _with_separators(texts: list[str], params: list[inspect.Parameter]) -> list[str]:
    """``/`` after positional-only parameters and ``*`` before keyword-only ones, as
    ``inspect.Signature`` writes them."""
    kinds = [p.kind for p in params]
    out: list[str] = []
    for n, (text, kind) in enumerate(zip(texts, kinds)):
        previous = kinds[n - 1] if n else None
        if previous is inspect.Parameter.POSITIONAL_ONLY and kind is not previous:
            out.append("/")
        if (kind is inspect.Parameter.KEYWORD_ONLY and previous not in
                (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_POSITIONAL)):
            out.append("*")
        out.append(text)
    if kinds and kinds[-1] is inspect.Parameter.POSITIONAL_ONLY:
        out.append("/")
    return out


_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc):`~?([^`]+)`")
_FIELD = re.compile(r"^:(param|return|returns|raises)\s*([^:]*):\s*(.*)$")


def markdown(doc: str) -> str:
    """A docstring in Markdown: ``code`` and :role:`target` as code spans, and each
    ``:param name:`` / ``:return:`` field (its indented continuation joined) as a list item."""
    lines: list[str] = []
    in_field = False
    for line in doc.splitlines():
        field = _FIELD.match(line)
        if field:
            kind, name, text = field.groups()
            label = f"`{name.strip()}`" if kind == "param" else kind.rstrip("s") + "s"
            lines.append(f"- {label}: {text}")
            in_field = True
        elif in_field and line.startswith(" ") and line.strip():
            lines[-1] += " " + line.strip()
        else:
            in_field = False
            lines.append(line)
    text = "\n".join(lines)
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return text.replace("``", "`")
