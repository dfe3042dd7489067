"""Faust codecs that carry events as binary Protobuf.

One codec per event type is registered under the event's full name, so a topic declares its
wire format by name::

    register_codecs()
    topic = app.topic(name, value_serializer="flywheel.v1.Trace")   # values decode to Trace

Decoding keeps unknown fields and rejects values without an envelope (EventDecodeError, which
the Faust consumer reports as a value decode error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.serializers import codecs
from google.protobuf.message import Message

from flywheel.errors import EventDecodeError
from flywheel.events.codec import EVENT_CLASSES, decode, encode, from_dict, message_class


class ProtobufCodec(codecs.Codec):
    """Binary Protobuf codec bound to one message class.

    ``_dumps`` accepts an instance of the class (or a JSON-mapping dict of it); ``_loads``
    returns an instance.
    """

    def __init__(self, message_cls: type[Message] | str | None = None,
                 children: tuple[codecs.CodecT, ...] | None = None, **kwargs: Any) -> None:
        if message_cls is None:
            raise EventDecodeError("ProtobufCodec needs a message class or event type")
        cls = message_class(message_cls) if isinstance(message_cls, str) else message_cls
        # message_cls goes into kwargs so Codec.clone (used by ``codec | other``) keeps it.
        super().__init__(children=children, message_cls=cls, **kwargs)
        self.message_cls = cls

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, self.message_cls):
            return encode(obj)
        if isinstance(obj, Mapping):
            return encode(from_dict(obj, self.message_cls))
        raise EventDecodeError(
            f"{self.message_cls.DESCRIPTOR.full_name} codec cannot encode {type(obj).__name__}"
        )

    def _loads(self, s: bytes) -> Message:
        return decode(s, self.message_cls)


def codec_name(message_cls: type[Message]) -> str:
    """The name a message's codec is registered under, e.g. ``"flywheel.v1.Trace"``."""
    return message_cls.DESCRIPTOR.full_name


def register_codecs() -> dict[str, ProtobufCodec]:
    """Register one :class:`ProtobufCodec` per event with Faust; safe to call repeatedly.

    Returns:
        The codecs by name.
    """
    registered = {name: ProtobufCodec(cls) for name, cls in EVENT_CLASSES.items()}
    for name, codec in registered.items():
        codecs.register(name, codec)
    return registered
