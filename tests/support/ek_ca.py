"""Test EK CAs shaped like the manufacturers' (no tests here).

We have no manufacturer's private key, so the non-canonical case is rebuilt: a CA whose Name is
one multi-valued RDN (``C=TW+O=...+CN=...``, as Nuvoton's roots) is issued normally, then the
SET elements of that RDN are put out of DER order in the issuer and subject fields and the
to-be-signed bytes are signed again -- exactly the encoding pyca/cryptography refuses with
``InvalidSetOrdering``. EK certificates issued by such a CA carry the same non-canonical issuer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ecash_tpm.attest import ObjectAttributes, PublicArea, public_area_from_key

NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
"""A fixed verification time inside every certificate made here."""

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def maker_name(cn: str, org: str = "Test TPM Maker", country: str = "TW") -> x509.Name:
    """One multi-valued RDN, like the Nuvoton and NTC roots."""
    return x509.Name(
        [
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, country),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        ]
    )


@dataclass(frozen=True)
class MakerCa:
    der: bytes
    key: PrivateKey
    name: x509.Name

    def pem(self) -> bytes:
        import base64

        b64 = base64.encodebytes(self.der).replace(b"\n", b"")
        lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
        return (
            b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"
        )


# --- minimal DER surgery (tests only: the product reads through asn1crypto) ----------------


def _tlv(data: bytes, pos: int) -> tuple[int, int]:
    """(header length, content length) of the TLV at ``pos``."""
    first = data[pos + 1]
    if first < 0x80:
        return 2, first
    n = first & 0x7F
    return 2 + n, int.from_bytes(data[pos + 2 : pos + 2 + n], "big")


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """(start, end) of each TLV in data[start:end]."""
    out = []
    pos = start
    while pos < end:
        hl, cl = _tlv(data, pos)
        out.append((pos, pos + hl + cl))
        pos += hl + cl
    return out


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _seq(content: bytes, tag: int = 0x30) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _scramble_name(tbs: bytearray, start: int, end: int) -> None:
    """Reverse the elements of every multi-valued RDN SET of the Name at tbs[start:end]."""
    hl, _ = _tlv(tbs, start)
    for set_start, set_end in _children(tbs, start + hl, end):
        shl, _ = _tlv(tbs, set_start)
        elems = _children(tbs, set_start + shl, set_end)
        if len(elems) > 1:
            parts = [bytes(tbs[a:b]) for a, b in elems]
            tbs[set_start + shl : set_end] = b"".join(reversed(parts))


def make_noncanonical(der: bytes, signer: PrivateKey) -> bytes:
    """``der`` with its issuer and subject RDN SETs out of order, signed again by ``signer``."""
    outer = _children(der, _tlv(der, 0)[0], len(der))
    (tbs_a, tbs_b), (alg_a, alg_b), _ = outer
    tbs = bytearray(der[tbs_a:tbs_b])
    thl, _ = _tlv(tbs, 0)
    fields = _children(tbs, thl, len(tbs))
    first = 1 if tbs[fields[0][0]] == 0xA0 else 0  # explicit version present
    for idx in (first + 2, first + 4):  # issuer, subject
        _scramble_name(tbs, *fields[idx])
    if isinstance(signer, rsa.RSAPrivateKey):
        sig = signer.sign(bytes(tbs), padding.PKCS1v15(), hashes.SHA256())
    else:
        sig = signer.sign(bytes(tbs), ec.ECDSA(hashes.SHA256()))
    return _seq(bytes(tbs) + der[alg_a:alg_b] + _seq(b"\x00" + sig, 0x03))


# --- certificates ------------------------------------------------------------------------


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def make_ca(
    name: x509.Name,
    issuer: MakerCa | None = None,
    *,
    noncanonical: bool = False,
    ca: bool = True,
    rsa_key: bool = False,
    not_before: dt.datetime = dt.datetime(2015, 1, 1, tzinfo=dt.UTC),  # valid today too
    not_after: dt.datetime = NOW + dt.timedelta(days=3650),
) -> MakerCa:
    """A CA certificate (self-signed without ``issuer``), optionally non-canonical."""
    key: PrivateKey = (
        rsa.generate_private_key(65537, 2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    signer = issuer.key if issuer else key
    builder = _builder(
        name, issuer.name if issuer else name, key.public_key(), not_before, not_after
    )
    builder = builder.add_extension(
        x509.BasicConstraints(ca=ca, path_length=None), critical=True
    ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    der = builder.sign(signer, hashes.SHA256()).public_bytes(Encoding.DER)
    if noncanonical:
        der = make_noncanonical(der, signer)
    return MakerCa(der, key, name)


def make_ek(
    issuer: MakerCa,
    *,
    noncanonical: bool | None = None,
    now: dt.datetime = NOW,
    not_after: dt.datetime | None = None,
) -> tuple[bytes, PublicArea]:
    """(EK certificate DER, EK public area) issued by ``issuer``, valid around ``now``.

    ``noncanonical`` (default: whether the issuer's Name is multi-valued) writes the issuer
    Name out of DER order, as a CA with a non-canonical Name does.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = not_after or now + dt.timedelta(days=3650)
    builder = _builder(
        x509.Name([]), issuer.name, key.public_key(), now - dt.timedelta(days=30), not_after
    )
    builder = builder.add_extension(
        x509.SubjectAlternativeName(
            [
                x509.DirectoryName(
                    x509.Name(
                        [x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.1"), "id:1050")]
                    )
                )
            ]
        ),
        critical=True,
    )
    der = builder.sign(issuer.key, hashes.SHA256()).public_bytes(Encoding.DER)
    multi = any(len(rdn) > 1 for rdn in issuer.name.rdns)
    if noncanonical if noncanonical is not None else multi:
        der = make_noncanonical(der, issuer.key)
    area = public_area_from_key(
        key.public_key(), attributes=ObjectAttributes.RESTRICTED | ObjectAttributes.DECRYPT
    )
    return der, area


def nv_contents(der: bytes, padding_len: int = 37) -> bytes:
    """The EK certificate as a TPM's NV index holds it: DER followed by padding bytes."""
    return der + b"\xff" * padding_len
