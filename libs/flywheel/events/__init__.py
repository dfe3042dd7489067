"""Event schemas and how they travel: the topic registry, codecs and envelopes.

- :mod:`flywheel.events.topics`: every topic, its key and its event type.
- :mod:`flywheel.events.codec`: binary Protobuf and JSON encode/decode, the event registry.
- :mod:`flywheel.events.envelope`: build and read the envelope every event carries.
- :mod:`flywheel.events.faust_codec`: Faust codecs per event type (imports Faust).
- :mod:`flywheel.events.protogen`: regenerate the bindings in ``flywheel.v1`` (``make proto``).
"""

from flywheel.events.codec import (
    EVENT_CLASSES,
    decode,
    decode_topic_value,
    encode,
    event_type_of,
    from_dict,
    from_json,
    message_class,
    to_dict,
    to_json,
)
from flywheel.events.envelope import event_id, new_envelope, stamp

__all__ = [
    "EVENT_CLASSES",
    "decode",
    "decode_topic_value",
    "encode",
    "event_id",
    "event_type_of",
    "from_dict",
    "from_json",
    "message_class",
    "new_envelope",
    "stamp",
    "to_dict",
    "to_json",
]
