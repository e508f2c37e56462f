"""Party signing keys and signed, canonically encoded objects (DESIGN §1, §5).

Every party except the customer's TPM signs with an ECDSA P-256 key certified by the central
bank: merchants sign payment requests, the bank signs receipts and keyset descriptors, and so on.

Two rules make these signatures safe to keep as evidence:

* **Canonical encoding.** What is signed is a byte string that has exactly one spelling per value
  (:func:`canonical_encode`), so a verifier rebuilds it from the parsed JSON and two parties always
  agree on ``preq = SHA-256(canonical_encode(request))``.
* **Domain separation.** The ECDSA message hash is ``tagged_hash(domain_tag, payload)``, so a
  signature made for one purpose (a receipt) never verifies for another (a payment request), even
  under the same key and over the same bytes.

Signatures are 64 bytes ``r || s`` (big-endian, 32 bytes each) with *low s* (``s <= n/2``):
signing normalises s and verification rejects high s, so a signature has one valid spelling and
cannot be re-encoded by a third party. (Still: identify objects by their digest, not by their
signature.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from ecash_tpm.crypto.encoding import TAG_PREFIX, b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.errors import ConfigError, EcashError, EncodingError, InputError, SignatureError

__all__ = [
    "CANONICAL_MAX_DEPTH",
    "CANONICAL_MAX_INT",
    "OBJECT_TAG_PREFIX",
    "SIGNATURE_LEN",
    "CanonicalEncodingError",
    "KeyFileError",
    "PartyKey",
    "PublicKeyError",
    "SignatureInvalidError",
    "SignedObjectError",
    "WrongKindError",
    "canonical_decode",
    "canonical_digest",
    "canonical_encode",
    "canonical_encode_reference",
    "key_id",
    "load_public_key",
    "object_domain_tag",
    "public_key_bytes",
    "sign_object",
    "verify_object",
    "verify_object_encoded",
    "verify_signature",
    "write_file_atomic",
]

#: Largest integer magnitude :func:`canonical_encode` accepts: 2^53 - 1, the range every JSON
#: implementation (including JavaScript's) reads exactly (RFC 7493 I-JSON). Bigger numbers are
#: bytes and travel as base64url strings.
CANONICAL_MAX_INT = 2**53 - 1
#: Nesting limit; also stops cyclic structures from recursing forever.
CANONICAL_MAX_DEPTH = 32
#: Domain tag prefix of signed objects: kind ``k`` is signed under ``ecash-tpm/v1/obj/k``.
OBJECT_TAG_PREFIX = TAG_PREFIX + "obj/"
#: Length of an encoded signature: ``r || s``, 32 bytes each.
SIGNATURE_LEN = 64

_CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 n
_KIND_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_OBJECT_FIELDS = frozenset({"kind", "body", "signature", "signer"})


# --- errors ----------------------------------------------------------------------------------


class CanonicalEncodingError(EncodingError):
    """A value cannot be canonically encoded (float, bytes, non-str key, too deep, ...)."""

    code = "canonical.unsupported"


class PublicKeyError(EncodingError):
    """A public key is not an ECDSA P-256 key in SubjectPublicKeyInfo form."""

    code = "key.invalid_public"


class KeyFileError(ConfigError):
    """A key file is missing, unreadable, not a P-256 PKCS#8 key, or would be overwritten."""

    code = "key.file_invalid"


class SignatureInvalidError(SignatureError):
    """A party signature does not verify under the given key and domain tag."""

    code = "signature.invalid"


class SignedObjectError(InputError):
    """A signed-object document does not have the ``{kind, body, signature, signer}`` shape."""

    code = "signed_object.malformed"


class WrongKindError(SignedObjectError):
    """A signed object of one kind was presented where another kind is expected."""

    code = "signed_object.wrong_kind"


# --- canonical encoding ----------------------------------------------------------------------


def canonical_encode(obj: Any) -> bytes:
    """Canonical JSON bytes of JSON-safe data: the one spelling that gets hashed and signed.

    The format is the integer-only subset of RFC 8785 (JCS): UTF-8, no whitespace, object keys
    sorted by their UTF-16 code units, strings escaped minimally (``"``, ``\\``, and control
    characters only). Accepted values: ``dict`` with ``str`` keys, ``list``/``tuple``, ``str``,
    ``int`` within +-(2^53 - 1), ``bool`` and ``None``.

    Rejected with :class:`CanonicalEncodingError`: floats (no canonical decimal form we want to
    sign), ``bytes`` (callers convert them with :func:`~ecash_tpm.crypto.encoding.b64u_encode`
    first, so a field's type comes from its schema and a byte string and its base64url text can
    never be two different values with one encoding), strings with lone surrogates, and any
    other type.
    """
    if _fast_ok(obj, 0):
        # Fast path (issue 13 item 3): plain JSON types with ASCII keys encode identically
        # with the C encoder (code-point key order == UTF-16 order for ASCII); a lone
        # surrogate fails the UTF-8 step and goes to the reference encoder for its error.
        try:
            return json.dumps(
                obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
            ).encode("utf-8")
        except UnicodeEncodeError:
            pass
    return canonical_encode_reference(obj)


def canonical_encode_reference(obj: Any) -> bytes:
    """The value-by-value encoder behind :func:`canonical_encode` (its errors, and the
    differential-test oracle of the fast path)."""
    out: list[str] = []
    _encode_value(obj, out, 0)
    return "".join(out).encode("utf-8")


def _fast_ok(obj: Any, depth: int) -> bool:
    """True when ``obj`` is exact dict/list/tuple/str/int/bool/None data with ASCII keys,
    integers in range and nesting within the limit: the shapes the fast path encodes."""
    if depth > CANONICAL_MAX_DEPTH:
        return False
    t = type(obj)
    if t is str or t is bool or obj is None:
        return True
    if t is int:
        return bool(-CANONICAL_MAX_INT <= obj <= CANONICAL_MAX_INT)
    if t is dict:
        for key, value in obj.items():
            if type(key) is not str or not key.isascii() or not _fast_ok(value, depth + 1):
                return False
        return True
    if t is list or t is tuple:
        return all(_fast_ok(value, depth + 1) for value in obj)
    return False


def canonical_digest(obj: Any) -> bytes:
    """SHA-256 of :func:`canonical_encode` — e.g. ``preq`` of a payment request (DESIGN §5)."""
    return hashlib.sha256(canonical_encode(obj)).digest()


def canonical_decode(data: bytes) -> Any:
    """Parse canonical JSON, refusing anything that is not exactly its own canonical encoding.

    Use it where a canonical byte string arrives from outside and must be the one that was signed:
    duplicate keys, floats, extra whitespace or a different key order are all refused.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CanonicalEncodingError("canonical JSON must be bytes")
    raw = bytes(data)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise CanonicalEncodingError(f"duplicate key {key!r}")
            result[key] = value
        return result

    def no_float(text: str) -> Any:
        raise CanonicalEncodingError("floats are not allowed in canonical JSON")

    try:
        value = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=no_duplicates,
            parse_float=no_float,
            parse_constant=no_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CanonicalEncodingError("not valid JSON") from exc
    if canonical_encode(value) != raw:
        raise CanonicalEncodingError("JSON is not in canonical form")
    return value


def _encode_value(obj: Any, out: list[str], depth: int) -> None:
    if depth > CANONICAL_MAX_DEPTH:
        raise CanonicalEncodingError(f"nesting deeper than {CANONICAL_MAX_DEPTH}")
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        if not -CANONICAL_MAX_INT <= obj <= CANONICAL_MAX_INT:
            raise CanonicalEncodingError(
                "integer outside +-(2^53 - 1); encode large numbers as bytes"
            )
        out.append(str(int(obj)))
    elif isinstance(obj, str):
        out.append(_encode_str(obj))
    elif isinstance(obj, Mapping):
        items: list[tuple[bytes, str, Any]] = []
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CanonicalEncodingError(f"object keys must be str, not {type(key).__name__}")
            items.append((_utf16_sort_key(key), key, value))
        items.sort(key=lambda item: item[0])
        out.append("{")
        for i, (_, key, value) in enumerate(items):
            if i:
                out.append(",")
            out.append(_encode_str(key))
            out.append(":")
            _encode_value(value, out, depth + 1)
        out.append("}")
    elif isinstance(obj, list | tuple):
        out.append("[")
        for i, value in enumerate(obj):
            if i:
                out.append(",")
            _encode_value(value, out, depth + 1)
        out.append("]")
    elif isinstance(obj, float):
        raise CanonicalEncodingError("floats are not allowed; use integers (minor units)")
    elif isinstance(obj, bytes | bytearray | memoryview):
        raise CanonicalEncodingError("bytes must be converted with b64u_encode first")
    else:
        raise CanonicalEncodingError(f"unsupported type {type(obj).__name__}")


def _encode_str(text: str) -> str:
    # json.dumps(ensure_ascii=False) escapes exactly what JCS escapes: ", \, and U+0000..U+001F
    # (\b \t \n \f \r short forms, lower-case \u00xx otherwise).
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalEncodingError("string is not valid Unicode (lone surrogate)") from exc
    return json.dumps(text, ensure_ascii=False)


def _utf16_sort_key(key: str) -> bytes:
    try:
        return key.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise CanonicalEncodingError("key is not valid Unicode (lone surrogate)") from exc


# --- files -----------------------------------------------------------------------------------


def write_file_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same directory, created with ``mode`` (so a secret is
    never briefly world-readable), are fsynced, and replace the target with ``os.replace``.
    """
    target = Path(path)
    directory = target.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- keys ------------------------------------------------------------------------------------


def load_public_key(
    key: ec.EllipticCurvePublicKey | x509.Certificate | bytes,
) -> ec.EllipticCurvePublicKey:
    """Return a P-256 public key from a key object, a certificate, or SubjectPublicKeyInfo DER.

    A certificate is *not* validated here: check it first with
    ``ecash_tpm.centralbank.verify_party_certificate``.
    """
    if isinstance(key, x509.Certificate):
        try:
            candidate: object = key.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise PublicKeyError("certificate public key cannot be parsed") from exc
    elif isinstance(key, bytes | bytearray | memoryview):
        try:
            candidate = serialization.load_der_public_key(bytes(key))
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise PublicKeyError("not a SubjectPublicKeyInfo DER public key") from exc
    else:
        candidate = key
    if not isinstance(candidate, ec.EllipticCurvePublicKey) or not isinstance(
        candidate.curve, ec.SECP256R1
    ):
        raise PublicKeyError("party keys must be ECDSA P-256")
    return candidate


def public_key_bytes(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo DER: the wire and storage form of a party public key."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: ec.EllipticCurvePublicKey | x509.Certificate | bytes) -> str:
    """Lower-case hex SHA-256 of the SubjectPublicKeyInfo DER: a stable name for a party key."""
    return hashlib.sha256(public_key_bytes(load_public_key(key))).hexdigest()


class PartyKey:
    """An ECDSA P-256 signing key of one party (bank, merchant, TTP, CA, ...).

    Kept as unencrypted PKCS#8 PEM with mode 0600: the services run unattended, so protection
    comes from file permissions (and from an HSM/TPM in a hardened deployment), not a passphrase.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise KeyFileError("party keys must be ECDSA P-256")
        self._key = private_key

    @classmethod
    def generate(cls) -> PartyKey:
        """A fresh key from the OS CSPRNG."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> PartyKey:
        """Parse an unencrypted PKCS#8 (or SEC1) PEM P-256 private key."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyFileError("not an unencrypted PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyFileError("party keys must be ECDSA P-256")
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PartyKey:
        """Read a key written by :meth:`save`."""
        try:
            pem = Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise KeyFileError(
                f"key file {os.fspath(path)!r} does not exist", code="key.file_missing"
            ) from exc
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {exc}") from exc
        return cls.from_pem(pem)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted (see the class docstring for why)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the key atomically with mode 0600; refuses to replace a key unless asked to."""
        target = Path(path)
        if not overwrite and target.exists():
            raise KeyFileError(
                f"key file {os.fspath(path)!r} already exists", code="key.file_exists"
            )
        try:
            write_file_atomic(target, self.private_pem(), mode=0o600)
        except OSError as exc:
            raise KeyFileError(f"cannot write key file {os.fspath(path)!r}: {exc}") from exc

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The cryptography key object (for X.509 building in the CA)."""
        return self._key

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The public half."""
        return self._key.public_key()

    def public_key_bytes(self) -> bytes:
        """SubjectPublicKeyInfo DER of the public key."""
        return public_key_bytes(self.public_key)

    def key_id(self) -> str:
        """See :func:`key_id`."""
        return key_id(self.public_key)

    def sign(self, domain_tag: str, payload: bytes) -> bytes:
        """ECDSA over ``tagged_hash(domain_tag, payload)``; 64-byte low-s ``r || s``."""
        digest = tagged_hash(domain_tag, payload)
        der = self._key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(der)
        if s > _CURVE_ORDER // 2:
            s = _CURVE_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_signature(
    public_key: ec.EllipticCurvePublicKey | x509.Certificate | bytes,
    domain_tag: str,
    payload: bytes,
    signature: bytes,
) -> None:
    """Check a :meth:`PartyKey.sign` signature; raises :class:`SignatureInvalidError` if bad.

    Returns nothing on success so that a forgotten check cannot be mistaken for a passed one.
    """
    key = load_public_key(public_key)
    digest = tagged_hash(domain_tag, payload)
    if not isinstance(signature, bytes | bytearray) or len(signature) != SIGNATURE_LEN:
        raise SignatureInvalidError(f"signature must be {SIGNATURE_LEN} bytes r || s")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _CURVE_ORDER and 0 < s <= _CURVE_ORDER // 2):
        raise SignatureInvalidError("signature scalars out of range (or high s)")
    try:
        key.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature as exc:
        raise SignatureInvalidError(
            "signature does not verify", detail={"domain_tag": domain_tag}
        ) from exc


# --- signed objects --------------------------------------------------------------------------


def object_domain_tag(kind: str) -> str:
    """The domain tag a signed object of ``kind`` is signed under: ``ecash-tpm/v1/obj/<kind>``."""
    if not isinstance(kind, str) or not _KIND_RE.fullmatch(kind):
        raise SignedObjectError(
            "object kind must match [a-z0-9][a-z0-9._-]{0,63}", detail={"kind": repr(kind)[:80]}
        )
    return OBJECT_TAG_PREFIX + kind


def sign_object(
    key: PartyKey, kind: str, body: Mapping[str, Any], *, signer: str | None = None
) -> dict[str, Any]:
    """Sign ``body`` as an object of ``kind``: ``{kind, body, signature, signer}``.

    The signature covers ``canonical_encode(body)`` under the tag ``ecash-tpm/v1/obj/<kind>``,
    so the kind is bound by the signature itself. ``signer`` is an *unsigned lookup hint* —
    the signer's certificate fingerprint or, by default, :func:`key_id` — telling the verifier
    which key to fetch; verification never trusts it, it uses the key the caller supplies.
    """
    if not isinstance(body, Mapping):
        raise SignedObjectError("object body must be a JSON object")
    tag = object_domain_tag(kind)
    signature = key.sign(tag, canonical_encode(body))
    return {
        "kind": kind,
        "body": dict(body),
        "signature": b64u_encode(signature),
        "signer": key.key_id() if signer is None else signer,
    }


def verify_object(
    doc: Any,
    public_key_or_cert: ec.EllipticCurvePublicKey | x509.Certificate | bytes,
    expected_kind: str,
) -> dict[str, Any]:
    """Verify a :func:`sign_object` document and return its body.

    Raises :class:`SignedObjectError` (shape), :class:`WrongKindError`,
    :class:`CanonicalEncodingError` (body not encodable) or :class:`SignatureInvalidError`; any
    other failure is a bug. A certificate argument must already have been validated.
    """
    return verify_object_encoded(doc, public_key_or_cert, expected_kind)[0]


def verify_object_encoded(
    doc: Any,
    public_key_or_cert: ec.EllipticCurvePublicKey | x509.Certificate | bytes,
    expected_kind: str,
) -> tuple[dict[str, Any], bytes]:
    """:func:`verify_object`, also returning ``canonical_encode(body)`` (the signed bytes), so a
    caller that needs the body's digest does not encode a large body a second time."""
    tag = object_domain_tag(expected_kind)
    key = load_public_key(public_key_or_cert)
    if not isinstance(doc, Mapping) or set(doc.keys()) != _OBJECT_FIELDS:
        raise SignedObjectError("signed object must have exactly kind, body, signature, signer")
    if doc["kind"] != expected_kind:
        raise WrongKindError(
            "signed object has the wrong kind",
            detail={"expected": expected_kind, "got": repr(doc["kind"])[:80]},
        )
    body = doc["body"]
    if not isinstance(body, dict):
        raise SignedObjectError("object body must be a JSON object")
    if not isinstance(doc["signer"], str):
        raise SignedObjectError("signer must be a string")
    try:
        signature = b64u_decode(doc["signature"])
    except EcashError as exc:
        raise SignedObjectError("signature is not base64url") from exc
    payload = canonical_encode(body)
    verify_signature(key, tag, payload, signature)
    return body, payload
