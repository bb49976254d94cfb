"""Text in the reader's language: tr() marks a message, catalogues translate it, Accept-Language picks the language."""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

# BCP 47 tags, as users choose them and as Accept-Language names them. English is the source text of every
# message (its msgid), so it needs no catalogue; every other language has a gettext catalogue (.po) under
# app/translations, read at start: there is no compiled .mo to build or forget.
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
SOURCE_LANGUAGE = "en"
CATALOGUE_DIR = Path(__file__).resolve().parent.parent / "translations"
CATALOGUE_LOCALES = {"zh-CN": "zh_CN"}
DOMAIN = "messages"


class Message:
    """A translatable text and its parameters, rendered only when the reader's language is known.

    The text is the English msgid with {name} placeholders; a parameter may itself be a Message (a status or
    level name), rendered in the same language. str() renders English, for logs and the CLI."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, params: Mapping[str, Any]) -> None:
        self.msgid = msgid
        self.params = dict(params)

    def render(self, language: str) -> str:
        values = {name: render(value, language) for name, value in self.params.items()}
        return translate(self.msgid, language).format_map(values)

    def __str__(self) -> str:
        return self.render(SOURCE_LANGUAGE)

    def __repr__(self) -> str:
        return f"tr({self.msgid!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and (self.msgid, self.params) == (other.msgid, other.params)

    def __hash__(self) -> int:
        return hash(self.msgid)


def tr(msgid: str, /, **params: Any) -> Message:
    """Mark a text for translation: tr("No report with id {report_id}.", report_id=7).

    The text must be a literal (pybabel and tests/test_i18n.py extract it from the source); the values go in
    as parameters, never formatted into the text first."""
    return Message(msgid, params)


def render(value: Any, language: str) -> Any:
    """A Message as text in `language`; dicts, lists and tuples with every Message inside rendered; else as is."""
    if isinstance(value, Message):
        return value.render(language)
    if isinstance(value, dict):
        return {key: render(item, language) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, language) for item in value]
    return value


def translate(msgid: str, language: str) -> str:
    """The catalogue's text for `msgid` in `language`; the msgid itself (English) when it has none."""
    return catalogue(language).get(msgid) or msgid


@functools.cache
def catalogue(language: str) -> dict[str, str]:
    """msgid → translation of one language's catalogue, without fuzzy or empty entries; {} for English."""
    locale = CATALOGUE_LOCALES.get(language)
    if locale is None:
        return {}
    with catalogue_path(locale).open("rb") as fh:
        po = read_po(fh, locale=locale, domain=DOMAIN)
    return {m.id: m.string for m in po if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


def catalogue_path(locale: str) -> Path:
    return CATALOGUE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def placeholders(text: str) -> set[str]:
    """The {name} fields of a message text."""
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name is not None}


def supported(tag: str | None) -> str | None:
    """The language we write for a language tag: en, en-US → en; zh, zh-CN, zh-Hans-CN → zh-CN; else None."""
    primary = (tag or "").strip().split("-")[0].split("_")[0].lower()
    if primary == "en":
        return "en"
    if primary == "zh":
        return "zh-CN"
    return None


def negotiate(header: str | None) -> str:
    """The language of an Accept-Language header: the highest q first (q=0 refused), the default when none fits."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")):
        tag, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _eq, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and 0.0 < quality <= 1.0:
            ranked.append((-quality, position, tag))
    for _quality, _position, tag in sorted(ranked):
        if tag == "*":
            # Any language will do: ours.
            return DEFAULT_LANGUAGE
        language = supported(tag)
        if language is not None:
            return language
    return DEFAULT_LANGUAGE
