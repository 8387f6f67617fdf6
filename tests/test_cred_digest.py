"""treadle.cred.credentials.DigestCredentialFactory: HTTP Digest without HTTP (Twisted's API)."""

from __future__ import annotations

import hashlib

import pytest

from treadle.cred.credentials import (
    DigestCredentialFactory,
    DigestedCredentials,
    IUsernameDigestHash,
    IUsernameHashedPassword,
)
from treadle.cred.error import LoginFailed

REALM = b"test realm"


def h(name: str, data: bytes) -> bytes:
    return hashlib.new(name, data).hexdigest().encode()


def respond(
    challenge: dict[str, bytes],
    password: bytes,
    *,
    method: bytes = b"GET",
    uri: bytes = b"/x",
    username: bytes = b"alice",
    extra: bytes = b"",
) -> bytes:
    """A client's response to ``challenge``, computed with RFC 7616 §3.4.1's formulas."""
    name = {b"md5": "md5", b"SHA-256": "sha256"}[challenge["algorithm"]]
    ha1 = h(name, b"%s:%s:%s" % (username, challenge["realm"], password))
    ha2 = h(name, b"%s:%s" % (method, uri))
    digest = h(name, b"%s:%s:00000001:c0ffee:auth:%s" % (ha1, challenge["nonce"], ha2))
    return (
        b'username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s, qop=auth, '
        b'nc=00000001, cnonce="c0ffee", response="%s", opaque="%s"%s'
        % (
            username,
            challenge["realm"],
            challenge["nonce"],
            uri,
            challenge["algorithm"],
            digest,
            challenge["opaque"],
            extra,
        )
    )


def test_challenge_has_twisteds_keys_and_spelling() -> None:
    factory = DigestCredentialFactory(b"md5", REALM)
    assert factory.scheme == b"digest"
    for address in (None, "10.0.0.1", b"10.0.0.1"):
        challenge = factory.getChallenge(address)
        assert set(challenge) == {"realm", "qop", "algorithm", "nonce", "opaque"}
        assert (challenge["realm"], challenge["qop"], challenge["algorithm"]) == (
            REALM,
            b"auth",
            b"md5",
        )
        assert all(b"\n" not in value for value in challenge.values())
    assert DigestCredentialFactory("SHA-256", "r").getChallenge()["algorithm"] == b"SHA-256"
    with pytest.raises(ValueError):
        DigestCredentialFactory(b"sha-512", REALM)


@pytest.mark.parametrize("algorithm", [b"md5", b"sha-256"])
def test_decode_gives_credentials_that_check_the_password(algorithm: bytes) -> None:
    factory = DigestCredentialFactory(algorithm, REALM)
    response = respond(factory.getChallenge("10.0.0.1"), b"s3cret", method=b"POST")
    credentials = factory.decode(response, b"POST", b"10.0.0.1")
    assert isinstance(credentials, DigestedCredentials)
    assert IUsernameHashedPassword.providedBy(credentials)
    assert IUsernameDigestHash.providedBy(credentials)
    assert (credentials.username, credentials.method, credentials.realm) == (
        b"alice",
        b"POST",
        REALM,
    )
    assert credentials.fields["uri"] == b"/x" and not credentials.stale
    assert credentials.checkPassword(b"s3cret")
    assert not credentials.checkPassword(b"wrong")
    # The method is part of the hash: the same response for another method fails.
    assert not factory.decode(response, b"GET").checkPassword(b"s3cret")


def test_an_expired_nonce_decodes_as_stale() -> None:
    factory = DigestCredentialFactory(b"md5", REALM)
    now = [1_000_000.0]
    factory._getTime = lambda: now[0]  # type: ignore[method-assign]
    response = respond(factory.getChallenge(), b"s3cret")
    now[0] += factory.CHALLENGE_LIFETIME_SECS + 1
    credentials = factory.decode(response, b"GET")
    assert credentials.stale and credentials.checkPassword(b"s3cret")


def test_responses_it_did_not_challenge_are_refused() -> None:
    factory = DigestCredentialFactory(b"md5", REALM)
    challenge = factory.getChallenge()
    other = DigestCredentialFactory(b"md5", REALM)  # another key
    refused = [
        respond(other.getChallenge(), b"s3cret"),  # nonce and opaque from another key
        respond({**challenge, "opaque": b"0" * 32}, b"s3cret"),
        respond({**challenge, "realm": b"elsewhere"}, b"s3cret"),
        respond({**challenge, "algorithm": b"SHA-256"}, b"s3cret"),
        respond(challenge, b"s3cret", username=b""),
        respond(challenge, b"s3cret", extra=b", nc=00000002"),  # a parameter twice
        b'username="alice", nonce="' + challenge["nonce"] + b'"',  # parameters missing
        b"garbage",
    ]
    for response in refused:
        with pytest.raises(LoginFailed):
            factory.decode(response, b"GET", b"10.0.0.1")


def test_shared_secret_lets_another_process_decode() -> None:
    a = DigestCredentialFactory(b"md5", REALM, secret=b"k" * 32)
    b = DigestCredentialFactory(b"md5", REALM, secret=b"k" * 32)
    credentials = b.decode(respond(a.getChallenge(), b"pw"), b"GET")
    assert credentials.checkPassword(b"pw")
