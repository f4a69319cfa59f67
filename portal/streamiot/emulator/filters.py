"""The things service's list filters, with PostgreSQL's semantics.

The real service filters names with `LOWER(name) LIKE '%' || LOWER(:name) || '%'`, so
`_` and `%` in the filter act as wildcards and a backslash escapes the next character;
metadata is filtered with JSONB containment (`metadata @> :metadata`).
"""
import functools
import re


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern:
    parts = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            # The filter is always wrapped in `%...%`, so an escape is never last.
            parts.append(re.escape(next(chars, "\\")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def name_matches(name: str | None, filter_text: str) -> bool:
    """Whether a name passes the `name` filter: a case-insensitive substring match in
    which `_` matches any one character and `%` any run of characters."""
    regex = _like_regex("%" + filter_text.lower() + "%")
    return regex.fullmatch((name or "").lower()) is not None


def contains(document, fragment) -> bool:
    """JSONB `document @> fragment`, for the JSON values metadata can hold."""
    if isinstance(fragment, dict):
        return isinstance(document, dict) and all(
            key in document and contains(document[key], value) for key, value in fragment.items()
        )
    if isinstance(fragment, list):
        if not isinstance(document, list):
            return False
        return all(any(contains(item, wanted) for item in document) for wanted in fragment)
    if isinstance(document, list):
        # PostgreSQL quirk: an array contains a primitive that is one of its elements.
        return any(_same_scalar(item, fragment) for item in document)
    return _same_scalar(document, fragment)


def _same_scalar(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b
