"""The message catalogue: every tr() text translated, no error text outside it, Accept-Language negotiation."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from app import errors
from app.lib import i18n
from app.lib.i18n import Message, tr

APP = Path(__file__).resolve().parent.parent / "app"


def source_messages() -> set[str]:
    """Every tr() text in app/, extracted as `make messages` (pybabel) does."""
    found = extract_from_dir(str(APP), method_map=[("**.py", "python")], keywords={"tr": None})
    return {message for _file, _line, message, _comments, _context in found}


def untranslated(messages: set[str], catalogue: dict[str, str]) -> list[str]:
    """The messages the catalogue lacks, or whose translation names other {placeholders} than the text."""
    return sorted(m for m in messages if m not in catalogue or i18n.placeholders(catalogue[m]) != i18n.placeholders(m))


@pytest.mark.parametrize("language", [lang for lang in i18n.LANGUAGES if lang != i18n.SOURCE_LANGUAGE])
def test_every_message_has_a_translation(language):
    messages = source_messages()
    assert len(messages) > 200
    missing = untranslated(messages, i18n.catalogue(language))
    assert missing == [], f"run `make messages` and translate in {i18n.CATALOGUE_LOCALES[language]}: {missing}"


def test_the_check_fails_for_a_missing_or_wrong_translation():
    assert untranslated({"No cell {code}.", "Not Found"}, {"Not Found": "未找到"}) == ["No cell {code}."]
    assert untranslated({"No cell {code}."}, {"No cell {code}.": "没有网格 {cell}。"}) == ["No cell {code}."]
    assert untranslated({"No cell {code}."}, {"No cell {code}.": "没有网格 {code}。"}) == []


@pytest.mark.parametrize("language", [lang for lang in i18n.LANGUAGES if lang != i18n.SOURCE_LANGUAGE])
def test_the_catalogue_holds_only_messages_the_code_uses(language):
    assert set(i18n.catalogue(language)) - source_messages() == set()


# ---- no text outside the catalogue ----------------------------------------------------------------------------

DOMAIN_ERRORS = {name for name, value in vars(errors).items() if isinstance(value, type) and name[0].isupper()}


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def plain_texts(tree: ast.AST) -> list[int]:
    """Lines where a DomainError gets a plain or f-string detail or field message, or problem_response a plain
    title or detail: text that would reach a client without a translation."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id in DOMAIN_ERRORS:
            texts = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "detail")]
            for k in node.keywords:
                if k.arg == "errors":
                    texts += [e for sub in ast.walk(k.value) if isinstance(sub, ast.List) for e in sub.elts]
            lines += [t.lineno for t in texts if _is_text(t)]
        elif node.func.id == "problem_response":
            lines += [a.lineno for a in node.args[2:4] if _is_text(a)]
    return lines


def test_no_error_text_bypasses_the_catalogue():
    """New DomainErrors and their details are written tr("... {name} ...", name=value), never as plain text."""
    found = {
        f"{path.relative_to(APP.parent)}:{line}"
        for path in APP.rglob("*.py")
        for line in plain_texts(ast.parse(path.read_text(encoding="utf-8")))
    }
    assert found == set()


def test_the_check_finds_plain_text():
    tree = ast.parse('raise NotFound(f"No cell {x}.")\nraise Conflict(tr("ok"), errors={"a": ["plain"]})')
    assert plain_texts(tree) == [1, 2]


def test_every_error_title_is_a_message():
    titled = [cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.DomainError)]
    assert titled and all(isinstance(cls.title, Message) for cls in titled)


# ---- messages and languages ----------------------------------------------------------------------------------


def test_a_message_renders_its_parameters_in_the_same_language():
    message = tr("Cannot {action} a case that is {status}.", action=tr("accept"), status=tr("closed"))
    assert message.render("zh-CN") == "状态为「已结案」的案件不能执行「受理」。"
    assert message.render("en") == str(message) == "Cannot accept a case that is closed."
    assert i18n.render({"errors": {"x": [message]}, "n": 1}, "en") == {
        "errors": {"x": ["Cannot accept a case that is closed."]},
        "n": 1,
    }


def test_an_error_is_english_text_for_logs():
    err = errors.NotFound(tr("No report with id {report_id}.", report_id=7))
    assert str(err) == "No report with id 7."
    assert err.detail.render("zh-CN") == "没有 ID 为 7 的案件。"
    assert errors.Conflict().detail == errors.Conflict.title


@pytest.mark.parametrize(
    "header, language",
    [
        (None, "zh-CN"),
        ("", "zh-CN"),
        ("en", "en"),
        ("en-GB", "en"),
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        ("zh-CN;q=0.5, en;q=0.9", "en"),
        ("en;q=0.1, zh;q=0.9", "zh-CN"),
        ("fr-FR, en;q=0.5", "en"),
        ("fr-FR, de", "zh-CN"),
        ("en;q=0", "zh-CN"),
        ("*", "zh-CN"),
        ("*;q=0.1, en", "en"),
        ("en;q=x, fr", "zh-CN"),
        (";;,,q=1", "zh-CN"),
    ],
)
def test_accept_language(header, language):
    assert i18n.negotiate(header) == language


@pytest.mark.parametrize("tag, language", [("en", "en"), ("EN-us", "en"), ("zh_CN", "zh-CN"), ("ja", None)])
def test_supported_languages(tag, language):
    assert i18n.supported(tag) == language
