"""Domain-separated hashing and byte encodings shared by every protocol (DESIGN §3)."""

from __future__ import annotations

import binascii
import hashlib
import struct

from ecash_tpm.errors import EncodingError

TAG_PREFIX = "ecash-tpm/v1/"


def tagged_hash(tag: str, *parts: bytes) -> bytes:
    """``Hash(tag, x1..xk)`` = SHA-256(u16be(len(tag)) || tag || for each xi: u32be(len) || xi).

    Length prefixes make the encoding injective, so no two argument lists collide. Tags must be
    ASCII and start with ``ecash-tpm/v1/`` so that hashes of different protocols never mix.
    """
    if not tag.startswith(TAG_PREFIX) or not tag.isascii():
        raise EncodingError(f"hash tag {tag!r} must be ASCII and start with {TAG_PREFIX!r}")
    tag_bytes = tag.encode("ascii")
    h = hashlib.sha256()
    h.update(struct.pack(">H", len(tag_bytes)))
    h.update(tag_bytes)
    for part in parts:
        if not isinstance(part, bytes | bytearray | memoryview):
            raise EncodingError(f"hash input must be bytes, not {type(part).__name__}")
        h.update(struct.pack(">I", len(part)))
        h.update(part)
    return h.digest()


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def b64u_encode(data: bytes) -> str:
    """base64url without padding: the project's JSON encoding of bytes (binascii directly: it
    is on every signed body's path)."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def b64u_decode(text: str) -> bytes:
    """Inverse of :func:`b64u_encode`; rejects anything that is not canonical base64url."""
    if not isinstance(text, str) or not text.isascii():
        raise EncodingError("expected a base64url string")
    try:
        raw = text.encode("ascii").translate(_FROM_URLSAFE)
        data = binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except (ValueError, TypeError) as exc:
        raise EncodingError("invalid base64url") from exc
    if b64u_encode(data) != text:  # also refuses '+', '/', padding and stray characters
        raise EncodingError("non-canonical base64url")
    return data
