"""HTTP routes of the bank (docs/api.md, bank section) over :class:`BankDomain`.

Routes are plain ``def`` (FastAPI runs them in worker threads, the data layer blocks) and do
nothing but parse, call the domain and shape the answer; errors are the domain's typed errors,
turned into ``{code, message, detail}`` (+ ``Retry-After``) by the service framework.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import Field

from ecash_tpm.bank.deposit import decode_sigma
from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.errors import InvalidTokenError
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.bank.store import MIGRATIONS
from ecash_tpm.protocol.api.base import ApiModel, B64Bytes
from ecash_tpm.service.app import create_app

__all__ = ["build_router", "create_bank_app"]


class SignedObject(ApiModel):
    """``{kind, body, signature, signer}`` as made by ``sign_object``."""

    kind: str = Field(max_length=64)
    body: dict[str, Any]
    signature: str = Field(max_length=200)
    signer: str = Field(max_length=200)


class LoginBody(ApiModel):
    account_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp: str = Field(min_length=1, max_length=16)


class LoginAnswer(ApiModel):
    token: str
    expires_at: int


class AccountAnswer(ApiModel):
    account_id: str
    balance: int
    currency: str


class KeysetsAnswer(ApiModel):
    bank_cert: str
    keysets: list[dict[str, Any]]


class WithdrawItemBody(ApiModel):
    keyset_id: Annotated[B64Bytes, Field(min_length=16, max_length=16)]
    blinded_msg: Annotated[B64Bytes, Field(min_length=1, max_length=512)]


class WithdrawBody(ApiModel):
    request_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    items: list[WithdrawItemBody] = Field(min_length=1, max_length=1024)


class WithdrawAnswer(ApiModel):
    request_id: str
    blind_signatures: list[B64Bytes]


class ReserveBody(SignedObject):
    """The signed object with the signer's certificate (PEM) beside it as ``cert``."""

    cert: str = Field(max_length=16384)


class ReserveAnswer(ApiModel):
    locked_until: int
    serials: list[B64Bytes]


class DepositBody(SignedObject):
    """The signed object with the signer's certificate (PEM) beside it as ``cert``."""

    cert: str = Field(max_length=16384)


class DepositAnswer(ApiModel):
    receipt: dict[str, Any]
    cert: str


class CoinStatusAnswer(ApiModel):
    sigma: B64Bytes
    state: Literal["unspent", "locked", "spent"]
    locked_until: int | None = None


class LiftBody(SignedObject):
    """The signed object with the signer's certificate (PEM) beside it as ``cert``."""

    cert: str = Field(max_length=16384)


def get_bank(request: Request) -> BankDomain:
    """FastAPI dependency: the domain object put on ``app.state`` at start-up."""
    bank: BankDomain = request.app.state.bank
    return bank


Bank = Annotated[BankDomain, Depends(get_bank)]


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

    @router.post("/login", summary="Password + TOTP -> bearer token")
    def login(body: LoginBody, bank: Bank) -> LoginAnswer:
        return LoginAnswer(**bank.login(body.account_id, body.password, body.totp))

    @router.get("/account", summary="The logged-in customer's balance")
    def account(bank: Bank, authorization: Annotated[str | None, Header()] = None) -> AccountAnswer:
        info = bank.account(bank.authenticate(_bearer(authorization)))
        return AccountAnswer(
            account_id=info["account_id"], balance=info["balance"], currency=info["currency"]
        )

    @router.get("/keysets", summary="Bank certificate and signed keyset descriptors")
    def keysets(bank: Bank) -> KeysetsAnswer:
        return KeysetsAnswer(**bank.keysets_info())

    @router.post("/withdraw", summary="Debit and blind-sign (idempotent by request_id)")
    def withdraw(
        body: WithdrawBody, bank: Bank, authorization: Annotated[str | None, Header()] = None
    ) -> WithdrawAnswer:
        account_id = bank.authenticate(_bearer(authorization))
        result = bank.withdraw(
            account_id, body.request_id, [(i.keyset_id, i.blinded_msg) for i in body.items]
        )
        return WithdrawAnswer(
            request_id=result["request_id"], blind_signatures=result["blind_signatures"]
        )

    @router.post("/reserve", summary="Hold verified coins for the lock period T")
    def reserve(body: ReserveBody, bank: Bank) -> ReserveAnswer:
        result = bank.reserve(body.model_dump(exclude={"cert"}), body.cert)
        return ReserveAnswer(locked_until=result["locked_until"], serials=result["serials"])

    @router.post("/deposit", summary="Verify and book a merchant's deposit")
    def deposit(body: DepositBody, bank: Bank) -> DepositAnswer:
        receipt = bank.deposit(body.model_dump(exclude={"cert"}), body.cert)
        return DepositAnswer(receipt=receipt, cert=bank.bank_cert_pem())

    @router.get("/coins/{sigma}", summary="Coin state for wallet recovery")
    def coin(sigma: str, bank: Bank) -> CoinStatusAnswer:
        return CoinStatusAnswer(**bank.coin_status(decode_sigma(sigma)))

    # --- fair exchange (issue 6): the TTP asks whether coins were deposited ---------------
    @router.post("/ttp/deposit-query", summary="TTP-signed query: were these coins deposited?")
    def ttp_deposit_query(body: DepositBody, bank: Bank) -> dict[str, Any]:
        from ecash_tpm.bank.ttp_query import answer_ttp_query

        return answer_ttp_query(bank, body.model_dump(exclude={"cert"}), body.cert)

    # --- end fair exchange -------------------------------------------------------------------

    @router.post("/blacklist/lift", summary="Lift a blacklist entry (supervision-signed)")
    def lift(body: LiftBody, bank: Bank) -> dict[str, Any]:
        return bank.lift_blacklist_signed(body.model_dump(exclude={"cert"}), body.cert)

    return router


def create_bank_app(domain: BankDomain, settings: BankSettings) -> FastAPI:
    """The bank's FastAPI app serving ``domain`` (whose database the caller keeps owning).

    Start-up migrates the database and makes sure every denomination has a keyset open for
    withdrawal (rotating where one is missing).
    """

    def startup(app: FastAPI) -> None:
        app.state.bank = domain
        domain.ensure_keysets()

    return create_app(
        "bank",
        settings=settings,
        routers=[build_router()],
        migrations=MIGRATIONS,
        database=domain.db,
        on_startup=[startup],
        description="ecash-tpm bank: accounts, keysets, withdrawals, deposits (docs/api.md)",
    )
