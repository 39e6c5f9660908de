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
