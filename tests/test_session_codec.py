"""SessionCodec: signed pickles, the same bytes whichever way they are made."""

from __future__ import annotations

import hashlib
import hmac
import pickle
from typing import Any

import pytest

from treadle.web._session_codec import ForgedField, SessionCodec, UnstorableValue

SECRET = b"k" * 32


class Holder:
    """A value referring to its session (as an adapter keeping ``self.session`` does)."""

    def __init__(self, session: Any, count: int) -> None:
        self.session = session
        self.count = count


@pytest.mark.parametrize("value", [0, 2**70, -1.5, "é", b"\x00", True, None, [1, "a"], {"k": 1}])
def test_a_field_is_a_signature_over_its_plain_pickle(value: Any) -> None:
    codec = SessionCodec(SECRET)
    data = codec.encode(b"uid", "a:x", value, object(), object())
    payload = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    # The format other processes (and other treadle versions) read: HMAC-SHA256 over the
    # session id, the field name and the pickle, then the pickle.
    mac = hmac.new(SECRET, b"uid\x00a:x\x00" + payload, hashlib.sha256).digest()
    assert data == mac + payload
    assert codec.decode(b"uid", "a:x", data, None, None) == value
    assert codec.holds(data, payload)
    assert not codec.holds(data, pickle.dumps("other", pickle.HIGHEST_PROTOCOL))


def test_the_session_and_site_are_stored_by_reference() -> None:
    codec = SessionCodec(SECRET)
    session, site, other_session = object(), object(), object()
    data = codec.encode(b"uid", "c:mod.ICounter", Holder(session, 3), session, site)
    loaded = codec.decode(b"uid", "c:mod.ICounter", data, other_session, site)
    assert loaded.session is other_session and loaded.count == 3


def test_a_field_moved_to_another_session_or_name_is_refused() -> None:
    codec = SessionCodec(SECRET)
    data = codec.encode(b"uid", "a:x", 5, None, None)
    with pytest.raises(ForgedField):
        codec.decode(b"other", "a:x", data, None, None)
    with pytest.raises(ForgedField):
        codec.decode(b"uid", "a:y", data, None, None)
    with pytest.raises(ForgedField):
        SessionCodec(b"j" * 32).decode(b"uid", "a:x", data, None, None)


def test_an_unpicklable_value_is_named() -> None:
    codec = SessionCodec(SECRET)
    with pytest.raises(UnstorableValue, match="attribute 'lock'"):
        codec.encode(b"uid", "a:lock", lambda: None, None, None)
