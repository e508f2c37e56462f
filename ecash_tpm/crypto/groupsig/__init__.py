"""TPM-bound group signature on BN_P256: DAA join, credential, spend proof, opening.

The scheme: a member's TPM holds an ECDAA key sk (Q = sk*G). At join it proves sk and reveals
its tracing tag T0 = sk*J0; the issuer answers with a designated-verifier credential
(A, B, C, D) under its epoch secret (x, y). Each coin carries a fresh randomisation
(R, S, T, W) = l*(A, B, C, D) with W = sk*S, so only that TPM can answer a spend proof, which
also encrypts T0 under the opener key Hop = h*G. The opener recovers T0 and proves it with a
Chaum-Pedersen proof anyone can check. The layer is pure: the TPM is reached only through
:class:`DaaSigner`, so nothing here imports a TPM library.

Modules (DESIGN = the design brief, protocol = docs/protocol.md):

* :mod:`.errors`: the error classes and their codes.
* :mod:`.encoding`: tags, field lengths, :data:`ENCODING_NOTES`, shared decoders
  (protocol §1.2, §1.3, §1.6).
* :mod:`.keys`: issuer secret (x, y) and opener secret h (DESIGN §4, §5; protocol §1.6, §12).
* :mod:`.signer`: the :class:`DaaSigner` interface to TPM2_Commit / TPM2_Sign (DESIGN §2;
  protocol §2.1, §2.3).
* :mod:`.join`: the join DAA proof (DESIGN §4; protocol §3.3, §3.4).
* :mod:`.credential`: issuance, the member's check, randomisation and the bank's designated
  check (DESIGN §4, §5; protocol §3.4, §3.5, §5.1, §7.2).
* :mod:`.public`: public verification of coin credentials with pairings and the G2 keys
  X2, Y2 (issue 14; protocol §7.4).
* :mod:`.keyproof`: the issuer's proof that a credential is under the epoch's certified
  (X, Y) (protocol §3.6).
* :mod:`.spend`: coin message and spend proof (DESIGN §5; protocol §5.1, §7, §7.1).
* :mod:`.opening`: opening and its proof (DESIGN §5; protocol §12).

Example with the software signer (tests only; a wallet passes its TPM-backed signer):

>>> import secrets
>>> from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
>>> issuer, opener, signer = IssuerSecret.generate(), OpenerSecret.generate(), SoftwareDaaSigner()
>>> cred, cred_proof = issue_credential(issuer, signer.public_point)
>>> verify_credential_proof(signer.public_point, cred, cred_proof)
>>> ctx = {"hop": opener.public, "preq": secrets.token_bytes(32), "epoch": 3,
...        "keyset_id": secrets.token_bytes(16), "sigma": secrets.token_bytes(32),
...        "coin": cred.randomize()}
>>> proof = make_spend_proof(signer, **ctx)
>>> verify_spend_proof(proof, **ctx)
>>> verify_credential(issuer, *ctx["coin"])
>>> open_and_identify(opener.h, proof.c1, proof.c2, {signer.t0.encode(): "alice"}).member
'alice'
"""

from __future__ import annotations

from ecash_tpm.crypto.groupsig.batch import combine_terms, credentials_batch_ok
from ecash_tpm.crypto.groupsig.credential import (
    Credential,
    CredentialProof,
    RandomizedCredential,
    issue_credential,
    verify_credential,
    verify_credential_proof,
)
from ecash_tpm.crypto.groupsig.encoding import (
    DIGEST_LEN,
    ENCODING_NOTES,
    JOIN_NONCE_LEN,
    KEYSET_ID_LEN,
    NONCE_K_MAX_LEN,
    PREQ_LEN,
    SIGMA_LEN,
    TAG_COIN,
    TAG_CRED,
    TAG_JOIN,
    TAG_OPEN,
    TAG_SPEND,
)
from ecash_tpm.crypto.groupsig.errors import (
    CredentialError,
    CredentialKeyProofError,
    CredentialProofError,
    GroupsigEncodingError,
    IssuerKeyG2Error,
    JoinProofError,
    OpeningProofError,
    SignerOutputError,
    SpendProofError,
    UnknownMemberError,
)
from ecash_tpm.crypto.groupsig.join import (
    JoinProof,
    join_challenge,
    make_join_proof,
    verify_join_proof,
)
from ecash_tpm.crypto.groupsig.keyproof import (
    TAG_CRED_KEY,
    CredentialKeyProof,
    prove_credential_key,
    verify_credential_key,
)
from ecash_tpm.crypto.groupsig.keys import IssuerPublic, IssuerSecret, OpenerSecret
from ecash_tpm.crypto.groupsig.opening import (
    Opening,
    OpeningProof,
    identify_member,
    open_and_identify,
    open_proof,
    verify_opening,
)
from ecash_tpm.crypto.groupsig.public import verify_credential_public, verify_credentials_public
from ecash_tpm.crypto.groupsig.signer import CommitResult, DaaSigner
from ecash_tpm.crypto.groupsig.spend import (
    SpendProof,
    check_spend_challenge,
    coin_message,
    make_spend_proof,
    spend_challenge,
    spend_equation_terms,
    verify_spend_proof,
)

__all__ = [
    "DIGEST_LEN",
    "ENCODING_NOTES",
    "JOIN_NONCE_LEN",
    "KEYSET_ID_LEN",
    "NONCE_K_MAX_LEN",
    "PREQ_LEN",
    "SIGMA_LEN",
    "TAG_COIN",
    "TAG_CRED",
    "TAG_CRED_KEY",
    "TAG_JOIN",
    "TAG_OPEN",
    "TAG_SPEND",
    "CommitResult",
    "Credential",
    "CredentialError",
    "CredentialKeyProof",
    "CredentialKeyProofError",
    "CredentialProof",
    "CredentialProofError",
    "DaaSigner",
    "GroupsigEncodingError",
    "IssuerKeyG2Error",
    "IssuerPublic",
    "IssuerSecret",
    "JoinProof",
    "JoinProofError",
    "Opening",
    "OpeningProof",
    "OpeningProofError",
    "OpenerSecret",
    "RandomizedCredential",
    "SignerOutputError",
    "SpendProof",
    "SpendProofError",
    "UnknownMemberError",
    "check_spend_challenge",
    "coin_message",
    "combine_terms",
    "credentials_batch_ok",
    "identify_member",
    "issue_credential",
    "join_challenge",
    "make_join_proof",
    "make_spend_proof",
    "open_and_identify",
    "open_proof",
    "prove_credential_key",
    "spend_challenge",
    "spend_equation_terms",
    "verify_credential",
    "verify_credential_key",
    "verify_credential_proof",
    "verify_credential_public",
    "verify_credentials_public",
    "verify_join_proof",
    "verify_opening",
    "verify_spend_proof",
]
