"""Sentences a person reads (errors, fixes, check results): English where they are raised, French on pages.

`N_("No employee is in the %(field)s %(name)r.", field=..., name=...)` marks the English text for the catalog
(`make translations-extract` reads the `N_` keyword) and keeps its parameters apart. The result is a `str`
subclass whose value is the English sentence with the parameters formatted, so the API's JSON errors, logs and
exceptions carry English unchanged. Pages translate it at render time (service.pages.translate, the `tr`
filter): the message id is looked up in the page's language first and the parameters are formatted after,
so a name or a value never changes which sentence is found; a parameter that is itself a Sentence is translated
too (a lint message inside "the brand's logo_url: …").
"""

from collections.abc import Callable
from typing import Any


class Sentence(str):
    msgid: str
    params: dict[str, Any]

    def __new__(cls, msgid: str, /, **params: Any) -> "Sentence":
        self = super().__new__(cls, _format(msgid, params, fallback=msgid))
        self.msgid, self.params = msgid, params
        return self

    def __reduce__(self):  # pickled with its parameters (queued jobs, multiprocessing)
        return (_rebuild, (self.msgid, self.params))

    def in_language(self, gettext: Callable[[str], str]) -> str:
        text = gettext(self.msgid)
        params = {k: v.in_language(gettext) if isinstance(v, Sentence) else v for k, v in self.params.items()}
        return _format(text, params, fallback=str(self))  # a broken translation: the English sentence


def _format(text: str, params: dict[str, Any], *, fallback: str) -> str:
    """`text % params`; "%%" is a literal "%" in a sentence without parameters too (python-format). A message
    marked only, whose parameters a template gives later (`_(msg, total=...)`), stays as written."""
    if not params and "%%" not in text:
        return text
    try:
        return text % params
    except (KeyError, ValueError, TypeError):
        return fallback


def _rebuild(msgid: str, params: dict[str, Any]) -> Sentence:
    return Sentence(msgid, **params)


def N_(msgid: str, /, **params: Any) -> Sentence:  # noqa: N802 - the gettext convention for "mark only"
    """Mark an English sentence for translation; format `params` into it (%(name)s placeholders)."""
    return Sentence(msgid, **params)
