"""A person's own fields as templates read them: ``recipient.first_name``, ``recipient.name``
and ``recipient.attributes.<key>``. Pure: no database, Celery or web imports.

A field the person does not have never fails a send. It reads as an undefined value that
renders as nothing, is false in a test, and gives way to ``default``: a template writes its
fallback as ``{{ recipient.first_name | default("there", true) }}``. The producer's ``data``
stays strict (a missing data variable is an error); only the person's fields are lenient.

:func:`fields_used` lists which of these fields a template reads, so a campaign can render once
per distinct set of values instead of once per person, and a preview can say who would get a
fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, nodes

from notify.i18n.jinja import I18N_EXTENSION

RECIPIENT_VARIABLE = "recipient"
NAMED_FIELDS = ("first_name", "name")
ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class PersonalFields:
    """What a person has told the service about themselves, decrypted; never the address."""

    first_name: str | None = None
    name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def value(self, path: str) -> Any:
        """The value at ``path`` (``first_name``, ``attributes.plan``), or None if absent
        (an empty string counts as absent)."""
        if path in NAMED_FIELDS:
            found: Any = getattr(self, path)
        elif path == ATTRIBUTES:
            found = dict(self.attributes) or None
        elif path.startswith(f"{ATTRIBUTES}."):
            found = self.attributes.get(path.removeprefix(f"{ATTRIBUTES}."))
        else:
            found = None
        return None if found == "" else found

    def lacking(self, paths: Iterable[str]) -> tuple[str, ...]:
        """Which of ``paths`` this person lacks, in order: where the template's fallback
        applies (``*`` names no one field and is left out)."""
        return tuple(path for path in sorted(paths) if path != "*" and self.value(path) is None)

    def key(self, paths: Iterable[str]) -> tuple[tuple[str, str], ...]:
        """A hashable summary of the values at ``paths``: two people with equal keys get the
        same rendering of a template that reads only those paths (``*``: every field)."""
        wanted = set(paths)
        if "*" in wanted:
            wanted = {*NAMED_FIELDS, ATTRIBUTES}
        return tuple((path, repr(self.value(path))) for path in sorted(wanted))

    def for_template(self) -> _TemplateView:
        return _TemplateView(
            {
                "first_name": self.first_name or None,
                "name": self.name or None,
                ATTRIBUTES: _TemplateView(dict(self.attributes)),
            }
        )


class _TemplateView:
    """Attribute and item access in a template; an absent or empty field is undefined."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = values

    def _get(self, key: str) -> Any:
        value = self._values.get(key)
        if value is None or value == "":
            return ChainableUndefined(name=key)
        return value

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self._get(key)

    def __getitem__(self, key: str) -> Any:
        return self._get(key)

    def __iter__(self) -> Any:
        return iter(key for key, value in self._values.items() if value not in (None, ""))

    def __bool__(self) -> bool:
        return any(value not in (None, "") for value in self._values.values())


def fields_used(sources: Iterable[str]) -> frozenset[str]:
    """The personal fields that Jinja ``sources`` read: ``first_name``, ``name``,
    ``attributes.<key>``; ``attributes`` alone when a template reads attributes by a computed
    key or loops over them; ``*`` when it uses ``recipient`` whole (say, passes it to a
    macro), which makes every field count."""
    used: set[str] = set()
    environment = Environment(extensions=[I18N_EXTENSION])  # noqa: S701 (parsed only)
    for source in sources:
        tree = environment.parse(source)
        parents: dict[int, nodes.Node] = {}
        for node in tree.find_all(nodes.Node):
            for child in node.iter_child_nodes():
                parents[id(child)] = node
        for name in tree.find_all(nodes.Name):
            if name.name == RECIPIENT_VARIABLE and name.ctx == "load":
                used.add(_path_from(name, parents))
    return frozenset(used)


def _path_from(name: nodes.Name, parents: Mapping[int, nodes.Node]) -> str:
    first = _step(name, parents)
    if first is None:
        return "*"
    node, key = first
    if key in NAMED_FIELDS:
        return key
    if key != ATTRIBUTES:
        return "*"  # an unknown field: renders undefined, but be safe and count every field
    second = _step(node, parents)
    return ATTRIBUTES if second is None else f"{ATTRIBUTES}.{second[1]}"


def _step(node: nodes.Node, parents: Mapping[int, nodes.Node]) -> tuple[nodes.Node, str] | None:
    """The parent of ``node`` if it reads a constant attribute or key of it: (parent, key)."""
    parent = parents.get(id(node))
    if isinstance(parent, nodes.Getattr) and parent.node is node:
        return parent, parent.attr
    if (
        isinstance(parent, nodes.Getitem)
        and parent.node is node
        and isinstance(parent.arg, nodes.Const)
        and isinstance(parent.arg.value, str)
    ):
        return parent, parent.arg.value
    return None


@cache
def template_fields_used(folder: Path) -> frozenset[str]:
    """:func:`fields_used` for the files of one template folder on disk."""
    return fields_used(
        (folder / name).read_text(encoding="utf-8")
        for name in ("subject.txt", "body.txt", "body.html")
    )
