"""What an intake system sends: one complaint (ComplaintIn) and the body of POST /v1/route."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from model.taxonomy import LOCAL_TIME
from serving.schemas.validators import storable, valid_unicode

# Real complaints from the Haikou 12345 hotline (data/haikou12345), used as OpenAPI examples.
EXAMPLE_TEXTS = (
    "市民来电反映: 秀英区向荣北路金美花园外面很多机动车违停，请交警局核实处理，谢谢！",
    "其原来在公司上班有社保，请问辞职出来了个人社保怎么交费？",
    "龙华区南沙路坡博新村二巷102号处有一盏路灯不亮",
)
MAX_ID_CHARS = 128
MAX_CHANNEL_CHARS = 64
MAX_LOCATION_CHARS = 255  # the store's location columns
# A received time outside this range is a caller's mistake (and 9999-12-31 overflows every
# due date computed from it); up to a day ahead allows for clocks that run fast.
EARLIEST_RECEIVED = datetime(1990, 1, 1, tzinfo=UTC)
LATEST_RECEIVED_AHEAD = timedelta(days=1)


class ComplaintIn(BaseModel):
    """One complaint as the intake system has it. Unknown fields are ignored.

    `text` must not be blank and may have at most HUYING_MAX_TEXT_CHARS characters (5000 by
    default); the limit is passed in the validation context by the routing service.
    """

    model_config = ConfigDict(extra="ignore")

    id: Annotated[Any, Field(description="Your id for the complaint (string or integer), echoed "
                                         "back; unique within a request.",
                             json_schema_extra={"type": ["string", "integer"],
                                                "examples": ["20180408199687"]})]
    text: Annotated[str, Field(strict=True,
                               description="What the citizen said or wrote (max 5000 characters "
                                           "by default).",
                               examples=[EXAMPLE_TEXTS[0]])]
    channel: Annotated[str | None, Field(strict=True, max_length=MAX_CHANNEL_CHARS,
                                         description="Where it came in.",
                                         examples=["12345热线", "微信小程序", "网格员App"])] = None
    received_at: Annotated[datetime | None, Field(description="When it came in (ISO 8601).",
                                                  examples=["2018-04-08T09:30:00+08:00"])] = None
    location: Annotated[str | None, Field(strict=True, max_length=MAX_LOCATION_CHARS,
                                          description="Address or place, as free text.",
                                          examples=["海口市秀英区向荣北路"])] = None

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise PydanticCustomError("wrong_type", "id must be a string or an integer")
        value = valid_unicode(str(value), "id").strip()
        if not value or len(value) > MAX_ID_CHARS:
            raise PydanticCustomError("invalid_id", "id must have 1 to {limit} characters",
                                      {"limit": MAX_ID_CHARS})
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise PydanticCustomError("invalid_id", "id contains a control character (such as "
                                      "NUL or a line break); send it as printable text")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        if all(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
            raise PydanticCustomError("empty_text", "text is empty or only whitespace or "
                                      "invisible characters; send the complaint's words")
        limit = (info.context or {}).get("max_text_chars")
        if limit is not None and len(value) > limit:
            raise PydanticCustomError(
                "text_too_long", "text has {length} characters; the limit is {limit} "
                "(HUYING_MAX_TEXT_CHARS): shorten it or send the essential part",
                {"length": len(value), "limit": limit})
        return storable(valid_unicode(value, "text"))

    @field_validator("channel", "location")
    @classmethod
    def _free_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else storable(valid_unicode(value, str(info.field_name)))

    @field_validator("received_at")
    @classmethod
    def _received(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            value = value.replace(tzinfo=LOCAL_TIME)  # naive: the duty list's time
        latest = datetime.now(UTC) + LATEST_RECEIVED_AHEAD
        try:
            in_range = EARLIEST_RECEIVED <= value <= latest
        except OverflowError:  # 0001-01-01 with a positive offset is before year 1 in UTC
            in_range = False
        if not in_range:
            raise PydanticCustomError(
                "received_at_out_of_range", "received_at {value} is not between {earliest} and "
                "a day from now; send when the complaint came in, with its time zone",
                {"value": value.isoformat(), "earliest": EARLIEST_RECEIVED.date().isoformat()})
        return value


_COMPLAINTS_SCHEMA: dict[str, Any] = {
    "type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/ComplaintIn"},
    "description": "1 to HUYING_MAX_COMPLAINTS (100 by default) complaints. Each is validated on "
                   "its own: a malformed item gets an error in its result, the others are routed."}


class RouteRequest(BaseModel):
    """The body of POST /v1/route. Items are validated one by one (see ComplaintIn)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "complaints": [
            {"id": "20180408199687", "text": EXAMPLE_TEXTS[0], "channel": "12345热线",
             "received_at": "2018-04-08T09:30:00+08:00", "location": "海口市秀英区向荣北路"},
            {"id": 2, "text": EXAMPLE_TEXTS[1]},
        ]}]})

    complaints: Annotated[list[Any], Field(strict=True, json_schema_extra=_COMPLAINTS_SCHEMA)]
