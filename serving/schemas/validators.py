"""Checks shared by the request bodies: valid Unicode, text the store can hold."""

from __future__ import annotations

from pydantic_core import PydanticCustomError


def valid_unicode(value: str, what: str) -> str:
    # JSON may carry lone surrogates (\ud800); they cannot be encoded, stored or echoed.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_unicode", "{what} contains an unpaired surrogate "
                                  "(\\ud800-\\udfff); send valid Unicode text",
                                  {"what": what}) from None
    return value


def storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; the rest of what the caller sent is kept as it is.
    return value.replace("\x00", "\ufffd")


def clean_text(value: str | None, name: str) -> str | None:
    """A field that must be valid Unicode without NUL (labels, notes, ids, paths)."""
    if value is None:
        return None
    value = valid_unicode(value, name)
    if "\x00" in value:
        raise PydanticCustomError("invalid_field", "{name} contains a NUL character",
                                  {"name": name})
    return value
