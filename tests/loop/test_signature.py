"""X-Loop-Signature = base64(HMAC-SHA256(secret, raw body)) (reference 2.3, pitfall 6.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from returnbridge.sources.loop.signature import HEADER, sign, verify

from ._support import fixture_bytes

SECRET = "loop-webhook-secret-1"
OTHER = "loop-webhook-secret-2"
BODY = fixture_bytes("return_created_exchange.json")


def independent_signature(body: bytes, secret: str) -> str:
    """The documented algorithm, written out here without using the code under test."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def php_json_encode(value: object) -> bytes:
    """What Loop (PHP json_encode) puts on the wire: compact, ``/`` escaped as ``\\/``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def test_header_name() -> None:
    assert HEADER == "X-Loop-Signature"


def test_sign_verify_round_trip() -> None:
    header = sign(BODY, SECRET)
    assert verify(BODY, header, [SECRET])


def test_known_vector_over_exact_fixture_bytes() -> None:
    expected = independent_signature(BODY, SECRET)
    assert len(base64.b64decode(expected, validate=True)) == 32  # a raw digest, not hex
    assert sign(BODY, SECRET) == expected
    assert verify(BODY, expected, [SECRET])


def test_published_hmac_sha256_vector() -> None:
    # RFC 4231 test case 2, written out as base64 of the published hex digest.
    digest = bytes.fromhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    body = b"what do ya want for nothing?"
    assert sign(body, "Jefe") == base64.b64encode(digest).decode("ascii")
    assert verify(body, base64.b64encode(digest).decode("ascii"), ["Jefe"])


def test_signature_covers_the_file_bytes_not_the_parsed_json() -> None:
    # The fixture is pretty-printed; signing its JSON re-encoding gives another signature.
    reencoded = json.dumps(json.loads(BODY)).encode()
    assert reencoded != BODY
    assert sign(reencoded, SECRET) != sign(BODY, SECRET)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_any_of_several_secrets_is_accepted(position: int) -> None:
    secrets = ["first-secret", "second-secret", "third-secret"]
    header = sign(BODY, secrets[position])
    assert verify(BODY, header, secrets)
    # Any iterable works, not only lists (e.g. a generator over configured subscriptions).
    assert verify(BODY, header, (s for s in secrets))


def test_header_whitespace_is_tolerated() -> None:
    assert verify(BODY, f"  {sign(BODY, SECRET)}\r\n", [SECRET])


def test_wrong_secret_is_rejected() -> None:
    assert not verify(BODY, sign(BODY, OTHER), [SECRET])
    assert not verify(BODY, sign(BODY, SECRET), [SECRET.upper()])


@pytest.mark.parametrize("header", ["", None, "   "])
def test_empty_or_missing_header_is_rejected(header: str | None) -> None:
    assert not verify(BODY, header, [SECRET])


def near_misses(header: str) -> list[str]:
    """Headers that differ from the right one only slightly, anywhere along its length."""
    assert header.endswith("=") and len(header) == 44
    flip = {"A": "B"}

    def changed(i: int) -> str:
        return header[:i] + flip.get(header[i], "A") + header[i + 1:]

    return [
        changed(0), changed(20), changed(42),  # one character different (42: the last one)
        header[:-1],  # padding dropped
        header[:20],  # truncated
        header + "A",  # extended
        header + header,
        header.lower() if header.lower() != header else header.upper(),
    ]


def test_near_miss_headers_are_rejected() -> None:
    header = sign(BODY, SECRET)
    for wrong in near_misses(header):
        assert wrong != header
        assert not verify(BODY, wrong, [SECRET]), wrong


def test_hex_digest_is_rejected() -> None:
    hex_header = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert not verify(BODY, hex_header, [SECRET])
    assert not verify(BODY, hex_header.upper(), [SECRET])


def test_base64_of_the_hex_string_is_rejected() -> None:
    hex_text = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest().encode()
    assert not verify(BODY, base64.b64encode(hex_text).decode(), [SECRET])


@pytest.mark.parametrize("index", [0, len(BODY) // 2, len(BODY) - 1])
def test_body_altered_by_one_byte_is_rejected(index: int) -> None:
    header = sign(BODY, SECRET)
    altered = bytearray(BODY)
    altered[index] ^= 0x01
    assert bytes(altered) != BODY
    assert not verify(bytes(altered), header, [SECRET])


def test_body_with_one_byte_appended_is_rejected() -> None:
    assert not verify(BODY + b"\n", sign(BODY, SECRET), [SECRET])


def test_fixture_reserialised_with_json_dumps_is_rejected() -> None:
    header = sign(BODY, SECRET)
    for reserialised in (
        json.dumps(json.loads(BODY)).encode(),
        json.dumps(json.loads(BODY), separators=(",", ":")).encode(),
    ):
        assert reserialised != BODY
        assert not verify(reserialised, header, [SECRET])


def test_php_body_reserialised_with_unescaped_slashes_is_rejected() -> None:
    # Loop signs PHP's compact json_encode output, which writes "/" as "\/". A framework that
    # parses and re-dumps the body produces the same JSON with plain slashes: the HMAC fails.
    wire = php_json_encode(json.loads(BODY))
    assert b"\\/" in wire
    header = independent_signature(wire, SECRET)
    assert verify(wire, header, [SECRET])

    reserialised = json.dumps(json.loads(wire), separators=(",", ":")).encode()
    assert reserialised == wire.replace(b"\\/", b"/")  # the only difference is the escaping
    assert not verify(reserialised, header, [SECRET])


def test_non_ascii_header_is_rejected_without_error() -> None:
    assert not verify(BODY, "é" + sign(BODY, SECRET)[1:], [SECRET])


def test_empty_secrets_are_ignored() -> None:
    # An unset secret must never turn "HMAC with an empty key" into a valid signature.
    empty_key_signature = independent_signature(BODY, "")
    assert not verify(BODY, empty_key_signature, [""])
    assert not verify(BODY, empty_key_signature, ["", SECRET, ""])
    # ... while a real secret next to empty entries still works.
    assert verify(BODY, sign(BODY, SECRET), ["", SECRET, ""])


def test_no_secrets_rejects_everything() -> None:
    assert not verify(BODY, sign(BODY, SECRET), [])


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40))
def test_round_trip_property(body: bytes, secret: str) -> None:
    header = sign(body, secret)
    assert header == independent_signature(body, secret)
    assert verify(body, header, [secret])
    assert not verify(body, header, [secret + "x"])
    assert not verify(body + b"x", header, [secret])
