"""HTTP routes of the bank (docs/api.md, bank section) over :class:`BankDomain`.

Routes are plain ``def`` (FastAPI runs them in worker threads, the data layer blocks) and do
nothing but parse, call the domain and shape the answer; errors are the domain's typed errors,
turned into ``{code, message, detail}`` (+ ``Retry-After``) by the service framework. Each
route's ``responses`` lists the errors its domain method raises (read from the domain code:
recoded protocol errors under the bank's own codes), so the OpenAPI document is the contract.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request

from ecash_tpm.bank.deposit import decode_sigma
from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.errors import (
    BAD_COIN_SIGNATURE,
    BAD_PROOF,
    KEYSET_EXPIRED,
    REQUEST_EXPIRED,
    UNKNOWN_KEYSET,
    BadCredentialError,
    CoinLockedError,
    DepositConflictError,
    DoubleSpendError,
    InsufficientFundsError,
    InvalidCredentialsError,
    InvalidTokenError,
    IssuerEpochUnknownError,
    LedgerInvariantError,
    LoginBlacklistedError,
    LoginLockedError,
    LoginThrottledError,
    MemberNotActiveError,
    MerchantBlacklistedError,
    MerchantKeyMismatchError,
    MerchantSignatureError,
    NotBlacklistedError,
    SwapConflictError,
    SwapExpiredError,
    TotpReusedError,
    UnknownAccountError,
    UnknownMerchantError,
    WithdrawConflictError,
    WrongKeyError,
)
from ecash_tpm.bank.join_auth import BindingInvalidError, issue_join_authorisation
from ecash_tpm.bank.models import (
    AccountAnswer,
    BlacklistEntryAnswer,
    CoinStatusAnswer,
    CoinStatusBody,
    DepositAnswer,
    DepositBody,
    IssuerEpochAnswer,
    JoinAuthorisationAnswer,
    JoinAuthorisationBody,
    KeysetsAnswer,
    LiftBody,
    LoginAnswer,
    LoginBody,
    ReserveAnswer,
    ReserveBody,
    SignedCoinStatusAnswer,
    SwapAnswer,
    SwapBody,
    TtpDepositAnswer,
    WithdrawAnswer,
    WithdrawBody,
)
from ecash_tpm.bank.redeem_routes import build_redeem_router
from ecash_tpm.bank.refund_routes import build_refund_router
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.bank.store import MIGRATIONS
from ecash_tpm.bank.store.spending import check_integrity
from ecash_tpm.bank.ttp_query import TtpQueryError
from ecash_tpm.crypto.blindrsa import BlindRsaInputError, SigningFailureError
from ecash_tpm.crypto.groupsig.errors import SpendProofError
from ecash_tpm.crypto.signing import CanonicalEncodingError, SignedObjectError, WrongKindError
from ecash_tpm.errors import ConfigError, ForbiddenError, InputError
from ecash_tpm.protocol.errors import (
    CoinSignatureError,
    KeysetExpiredError,
    MalformedCoinError,
    RequestExpiredError,
    RequestMismatchError,
    UnknownKeysetError,
    WrongCurrencyError,
)
from ecash_tpm.service.app import create_app
from ecash_tpm.service.openapi import (
    CERT_ERRORS,
    REMOTE_ERRORS,
    SIGNED_OBJECT_ERRORS,
    bearer,
    err,
    errors,
)
from ecash_tpm.service.tls import ClientCertificateRequiredError, ClientWrongRoleError, peer_party

__all__ = ["build_router", "create_bank_app"]


def get_bank(request: Request) -> BankDomain:
    """FastAPI dependency: the domain object put on ``app.state`` at start-up."""
    bank: BankDomain = request.app.state.bank
    return bank


Bank = Annotated[BankDomain, Depends(get_bank)]

_LOGIN_TOKEN = bearer("loginToken", "A customer's token from POST /v1/login")

# --- what the routes can answer (read from the domain methods they call) ------------------------

_UNKNOWN_KEYSET = err(
    UnknownKeysetError, UNKNOWN_KEYSET, status=404, detail={"keyset_id": "AAAAAAAAAAAAAAAAAAAAAA"}
)
_KEYSET_EXPIRED = err(KeysetExpiredError, KEYSET_EXPIRED, detail={"index": 0})

#: mutual TLS (unless insecure_http): the caller's client certificate and its role
_PEER_TLS = (ClientCertificateRequiredError, ClientWrongRoleError)

#: DepositChecks.authenticate: the merchant's envelope (not counted towards the blacklist).
_ENVELOPE = (
    err(InputError, message="expected a signed deposit object"),
    MerchantBlacklistedError,
    UnknownMerchantError,
    MerchantKeyMismatchError,
    MerchantSignatureError,
    SignedObjectError,
    WrongKindError,
    CanonicalEncodingError,
    *CERT_ERRORS,
)
#: DepositChecks.request/spends, check_deadline and booking: the payment and its coins.
_PAYMENT = (
    WrongKeyError,
    RequestMismatchError,
    err(RequestExpiredError, REQUEST_EXPIRED, detail={"deadline": 1700000300, "seen_at": 1}),
    MalformedCoinError,
    _UNKNOWN_KEYSET,
    _KEYSET_EXPIRED,
    err(CoinSignatureError, BAD_COIN_SIGNATURE, detail={"index": 0, "serial": "..."}),
    err(SpendProofError, BAD_PROOF, detail={"index": 0, "serial": "..."}),
    BadCredentialError,
    WrongCurrencyError,
    err(
        DoubleSpendError,
        message="coin already spent",
        detail={"serial": "3q2-7w", "transcript_id": 17},
    ),
    err(CoinLockedError, retry_after=True, detail={"retry_after": 42}),
    err(ConfigError, message="opener_public (Hop) is not configured"),
    LedgerInvariantError,
)


class WrongPartyError(ForbiddenError):
    """The merchant's TLS client certificate names another merchant than the signed deposit.

    A merchant's certificate authenticates the connection; the signature authenticates the
    deposit. Both must be the same merchant, or a shop could book (or probe) deposits with
    another shop's signed objects (replayed, stolen from a log) over its own connection.
    """

    code = "tls.client_wrong_party"


def _peer(request: Request, role: str) -> str | None:
    """The CN of the caller's client certificate for ``role`` (mutual TLS), or ``None`` when
    the bank runs plain HTTP on request (``insecure_http``): then, as before TLS, the signed
    object and the registered merchant key are the only authentication."""
    if request.app.state.settings.insecure_http:
        return None
    return peer_party(request, role=role)


def _same_merchant(request: Request, signed: dict[str, Any]) -> None:
    """Refuse a deposit/reservation signed by another merchant than the connection's."""
    peer = _peer(request, "merchant")
    body = signed.get("body")
    claimed = body.get("merchant_id") if isinstance(body, dict) else None
    if peer is not None and peer != claimed:
        raise WrongPartyError(
            "the client certificate is another merchant's than the deposit's",
            detail={"client": peer, "merchant_id": claimed},
        )


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise InvalidTokenError("Authorization: Bearer <token> is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("Authorization must be 'Bearer <token>'")
    return token.strip()


def build_router() -> APIRouter:
    """The bank's routes (no state: the domain comes from ``app.state.bank``)."""
    router = APIRouter(prefix="/v1", tags=["bank"])

    @router.post(
        "/login",
        summary="Password + TOTP -> bearer token",
        responses=errors(
            InvalidCredentialsError,
            LoginBlacklistedError,
            LoginLockedError,
            LoginThrottledError,
            TotpReusedError,
        ),
    )
    def login(body: LoginBody, bank: Bank, request: Request) -> LoginAnswer:
        # The source the throttle counts: the TCP peer (proxy headers are not trusted).
        source = request.client.host if request.client is not None else None
        token = bank.login(body.account_id, body.password, body.totp, source=source)
        return LoginAnswer(token=token.token, expires_at=token.expires_at)

    @router.get(
        "/account",
        summary="The logged-in customer's balance",
        dependencies=[_LOGIN_TOKEN],
        responses=errors(InvalidTokenError, UnknownAccountError),
    )
    def account(
        bank: Bank, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
    ) -> AccountAnswer:
        info = bank.account(bank.authenticate(_bearer(authorization)))
        return AccountAnswer(
            account_id=info.account_id, balance=info.balance, currency=info.currency
        )

    @router.get(
        "/keysets", summary="Bank certificate and signed keyset descriptors", responses=errors()
    )
    def keysets(bank: Bank) -> KeysetsAnswer:
        info = bank.keysets_info()
        return KeysetsAnswer(
            bank_cert=info.bank_cert, keysets=info.keysets, keyset_list=info.keyset_list
        )

    @router.get(
        "/issuer-epochs/{epoch}",
        summary="The central bank's certificate of an issuer epoch key (X, Y, X2, Y2)",
        responses=errors(IssuerEpochUnknownError),
    )
    def issuer_epoch(bank: Bank, epoch: int) -> IssuerEpochAnswer:
        # docs/protocol.md 3.6, 7.4: what merchants, the TTP and auditors verify coins with
        return IssuerEpochAnswer(certificate=bank.issuer_epoch_certificate(epoch))

    @router.post(
        "/withdraw",
        summary="Debit and blind-sign (idempotent by request_id)",
        dependencies=[_LOGIN_TOKEN],
        responses=errors(
            InvalidTokenError,
            InputError,
            MemberNotActiveError,
            _UNKNOWN_KEYSET,
            _KEYSET_EXPIRED,
            RequestMismatchError,
            InsufficientFundsError,
            WithdrawConflictError,
            BlindRsaInputError,
            SigningFailureError,
            err(ConfigError, message="a keyset's signing key is missing or does not match"),
            LedgerInvariantError,
            REMOTE_ERRORS,  # the membership check asks the issuer
        ),
    )
    def withdraw(
        body: WithdrawBody,
        bank: Bank,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> WithdrawAnswer:
        account_id = bank.authenticate(_bearer(authorization))
        result = bank.withdraw(
            account_id, body.request_id, [(i.keyset_id, i.blinded_msg) for i in body.items]
        )
        return WithdrawAnswer(
            request_id=result.request_id, blind_signatures=list(result.blind_signatures)
        )

    @router.post(
        "/reserve",
        summary="Hold verified coins for the lock period T (merchant client certificate)",
        responses=errors(_PEER_TLS, WrongPartyError, _ENVELOPE, _PAYMENT),
    )
    def reserve(body: ReserveBody, bank: Bank, request: Request) -> ReserveAnswer:
        signed = body.model_dump(exclude={"cert"})
        _same_merchant(request, signed)
        result = bank.reserve(signed, body.cert)
        return ReserveAnswer.model_validate(result.to_dict())

    @router.post(
        "/deposit",
        summary="Verify and book a merchant's deposit (merchant client certificate)",
        responses=errors(_PEER_TLS, WrongPartyError, _ENVELOPE, _PAYMENT, DepositConflictError),
    )
    def deposit(body: DepositBody, bank: Bank, request: Request) -> DepositAnswer:
        signed = body.model_dump(exclude={"cert"})
        _same_merchant(request, signed)
        receipt = bank.deposit(signed, body.cert)
        return DepositAnswer(receipt=receipt, cert=bank.bank_cert_pem())

    @router.post(
        "/swap",
        summary="Coins in, blind signatures on new coins out: anonymous change and refresh",
        responses=errors(
            InputError,
            RequestMismatchError,
            SwapExpiredError,
            SwapConflictError,
            MalformedCoinError,
            _UNKNOWN_KEYSET,
            _KEYSET_EXPIRED,
            err(CoinSignatureError, BAD_COIN_SIGNATURE, detail={"index": 0, "serial": "..."}),
            err(SpendProofError, BAD_PROOF, detail={"index": 0, "serial": "..."}),
            BadCredentialError,
            err(DoubleSpendError, message="coin already spent", detail={"serial": "3q2-7w"}),
            err(CoinLockedError, retry_after=True, detail={"retry_after": 42}),
            BlindRsaInputError,
            SigningFailureError,
            err(ConfigError, message="opener_public (Hop) is not configured"),
            LedgerInvariantError,
        ),
    )
    def swap(body: SwapBody, bank: Bank) -> SwapAnswer:
        request_id, signatures = bank.swap(body.model_dump())
        return SwapAnswer(request_id=request_id, blind_signatures=signatures)

    @router.get(
        "/coins/{sigma}",
        summary="Coin state for wallet recovery",
        responses=errors(err(InputError, message="sigma must be 32 bytes")),
    )
    def coin(sigma: str, bank: Bank) -> CoinStatusAnswer:
        serial = decode_sigma(sigma)
        status = bank.coin_status(serial)
        return CoinStatusAnswer(
            sigma=status.sigma,
            state=status.state,
            locked_until=status.locked_until,
            status=bank.signed_status([serial]),
            cert=bank.bank_cert_pem(),
        )

    @router.post(
        "/coins/status",
        summary="Bank-signed status of many coins at the bank's time (wallet recovery)",
        responses=errors(err(InputError, message="sigma must be 32 bytes")),
    )
    def coins_status(body: CoinStatusBody, bank: Bank) -> SignedCoinStatusAnswer:
        serials = [decode_sigma(s) for s in body.serials]
        return SignedCoinStatusAnswer(status=bank.signed_status(serials), cert=bank.bank_cert_pem())

    # --- fair exchange (issue 6): the TTP asks whether coins were deposited ---------------
    @router.post(
        "/ttp/deposit-query",
        summary="TTP-signed query: were these coins deposited? (TTP client certificate)",
        response_model=TtpDepositAnswer,
        responses=errors(
            _PEER_TLS,
            CERT_ERRORS,
            SIGNED_OBJECT_ERRORS,
            TtpQueryError,
            err(TtpQueryError, "bank.ttp_query_stale", message="the query is stale"),
        ),
    )
    def ttp_deposit_query(body: DepositBody, bank: Bank, request: Request) -> dict[str, Any]:
        from ecash_tpm.bank.ttp_query import answer_ttp_query

        _peer(request, "ttp")  # mutual TLS: only a TTP asks (the query is TTP-signed too)
        return answer_ttp_query(bank, body.model_dump(exclude={"cert"}), body.cert)

    # --- end fair exchange -------------------------------------------------------------------

    # --- issue 10 attack 3: a join is authorised by the account's own login ----------------
    @router.post(
        "/join-authorisation",
        summary="Bank-signed join authorisation for the logged-in account (docs/protocol.md)",
        dependencies=[_LOGIN_TOKEN],
        response_model=JoinAuthorisationAnswer,
        responses=errors(InvalidTokenError, BindingInvalidError),
    )
    def join_authorisation(
        body: JoinAuthorisationBody,
        bank: Bank,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> dict[str, Any]:
        account_id = bank.authenticate(_bearer(authorization))
        return issue_join_authorisation(bank, account_id, body.binding)

    @router.post(
        "/blacklist/lift",
        summary="Lift a blacklist entry (supervision-signed)",
        response_model=BlacklistEntryAnswer,
        responses=errors(CERT_ERRORS, SIGNED_OBJECT_ERRORS, InputError, NotBlacklistedError),
    )
    def lift(body: LiftBody, bank: Bank) -> dict[str, Any]:
        return bank.lift_blacklist_signed(body.model_dump(exclude={"cert"}), body.cert).to_dict()

    return router


def create_bank_app(domain: BankDomain, settings: BankSettings) -> FastAPI:
    """The bank's FastAPI app serving ``domain`` (whose database the caller keeps owning).

    Start-up migrates the database and makes sure every denomination has a keyset open for
    withdrawal (rotating where one is missing).
    """

    def startup(app: FastAPI) -> None:
        app.state.bank = domain
        app.state.crl = domain.crl  # mTLS callers are checked against it too (peer_party)
        check_integrity(domain.db)  # issue 13: never serve a damaged spent index
        domain.ensure_keysets()

    return create_app(
        "bank",
        settings=settings,
        routers=[build_router(), build_refund_router(), build_redeem_router()],
        migrations=MIGRATIONS,
        database=domain.db,
        on_startup=[startup],
        description="ecash-tpm bank: accounts, keysets, withdrawals, deposits (docs/api.md)",
    )
