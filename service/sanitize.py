"""The one place user-supplied HTML is cleaned (nh3, a maintained Rust sanitizer)."""

import nh3

# Enough for a legal disclaimer or a rich text field; no styles, scripts, images or forms.
ALLOWED_TAGS = {"a", "b", "br", "em", "i", "li", "ol", "p", "small", "span", "strong", "u", "ul"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto", "tel"}


def clean_html(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
    )


# A document written by comms (the social-media charter): headings, quotes, code, tables; links http(s) only.
DOCUMENT_TAGS = ALLOWED_TAGS | {
    "blockquote", "code", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre", "table", "tbody", "td", "th", "thead", "tr",
}  # fmt: skip
DOCUMENT_SCHEMES = {"http", "https"}


def clean_document(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=DOCUMENT_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=DOCUMENT_SCHEMES,
        link_rel="noopener noreferrer",
    )
