"""Request bodies: size limits, gzip, content types and length-delimited Protobuf framing.

Content types the gateway reads:

- ``application/json`` (any ``charset`` parameter): one object, a JSON array, or
  ``{"traces": [...]}`` / ``{"events": [...]}``.
- ``application/x-protobuf`` (also ``application/protobuf``): one message; with the parameter
  ``delimited=true``, a sequence of messages each preceded by its length as a varint (the
  framing of Java's ``writeDelimitedTo``), which is how a batch travels in binary.

``Content-Encoding: gzip`` is accepted; the limit applies to the decoded size, so a small
compressed body cannot expand without bound.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .errors import FieldIssue, InvalidInput, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
_PROTOBUF_ALIASES = {"application/x-protobuf", "application/protobuf",
                     "application/vnd.google.protobuf", "application/octet-stream+protobuf"}


@dataclass(frozen=True)
class MediaType:
    """A parsed Content-Type: ``kind`` is JSON or PROTOBUF; ``delimited`` for Protobuf streams."""

    kind: str
    delimited: bool = False


def parse_media_type(header: str | None, allowed: tuple[str, ...] = (JSON, PROTOBUF)) -> MediaType:
    """The media type of a request.

    Raises:
        UnsupportedMediaType: missing, or not one of ``allowed``.
    """
    if not header:
        raise UnsupportedMediaType(f"missing Content-Type; send one of {', '.join(allowed)}")
    main, *params = (p.strip() for p in header.split(";"))
    main = main.lower()
    kind = PROTOBUF if main in _PROTOBUF_ALIASES else main
    if kind not in allowed:
        raise UnsupportedMediaType(f"unsupported Content-Type {main!r}; send one of "
                                   f"{', '.join(allowed)}")
    options = {}
    for param in params:
        name, _, value = param.partition("=")
        options[name.strip().lower()] = value.strip().strip('"').lower()
    return MediaType(kind, options.get("delimited") in ("true", "1", "yes"))


async def read_body(stream: AsyncIterator[bytes], content_length: str | None,
                    content_encoding: str | None, limit: int) -> bytes:
    """The whole body, decoded from gzip when so encoded, at most ``limit`` bytes.

    Raises:
        PayloadTooLarge: the declared or actual (decoded) size exceeds ``limit``.
        UnsupportedMediaType: an encoding other than identity or gzip.
    """
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip"):
        raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"the body is {content_length} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding == "identity":
        return body
    return _gunzip(body, limit)


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInput([FieldIssue("$", f"invalid gzip data: {exc}")]) from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decoded body is larger than the limit of {limit} bytes")
    if not inflater.eof:
        raise InvalidInput([FieldIssue("$", "truncated gzip data")])
    return data


def split_delimited(data: bytes, max_count: int) -> list[bytes]:
    """Split a varint-length-delimited stream into message bytes.

    Raises:
        InvalidInput: a truncated or malformed frame.
        PayloadTooLarge: more than ``max_count`` messages.
    """
    frames, pos, end = [], 0, len(data)
    while pos < end:
        length, shift = 0, 0
        while True:
            if pos >= end or shift > 28:
                raise InvalidInput([FieldIssue(f"[{len(frames)}]", "malformed length prefix")])
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if pos + length > end:
            raise InvalidInput([FieldIssue(f"[{len(frames)}]",
                                           f"truncated: {length} bytes announced, "
                                           f"{end - pos} left")])
        frames.append(data[pos:pos + length])
        pos += length
        if len(frames) > max_count:
            raise PayloadTooLarge(f"more than {max_count} messages in one request")
    return frames
