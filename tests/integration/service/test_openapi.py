"""The OpenAPI documents of every party are complete and true (issue 15, "operators without
traps"): they validate, every route lists each error status with its codes and an example body,
bodies and answers are typed, bearer routes carry their security scheme, the JSON the typed
answers send is what the records' ``to_dict()`` always sent, ``/docs`` and ``/redoc`` load
only from the service itself, and refusals really answered over HTTP are in the documents."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from openapi_spec_validator import validate
from pydantic import BaseModel

from ecash_tpm.bank.models import BlacklistEntry, BlacklistEntryAnswer, TtpDepositAnswer
from ecash_tpm.bank.routes import create_bank_app
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.centralbank.service import create_centralbank_app
from ecash_tpm.centralbank.settings import CentralBankSettings, hash_admin_token
from ecash_tpm.issuer.routes import create_issuer_app
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.merchant import models as mm
from ecash_tpm.merchant.app import create_merchant_app
from ecash_tpm.merchant.routes import BANK_REFUSALS
from ecash_tpm.merchant.settings import MerchantSettings
from ecash_tpm.merchant.store import CatalogueProduct
from ecash_tpm.protocol.api.base import ErrorBody, SealedBox, SignedObject
from ecash_tpm.service.openapi import documented_codes
from ecash_tpm.supervision.routes import create_supervision_app
from ecash_tpm.supervision.settings import SupervisionSettings
from ecash_tpm.ttp import models as tm
from ecash_tpm.ttp.routes import create_ttp_app
from ecash_tpm.ttp.settings import TtpSettings

JSON = "application/json"
ERROR_REF = "#/components/schemas/ErrorBody"
MEMBERS_TOKEN = "members-token-0123456789"
OPEN_TOKEN = "open-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789"

#: (party, method, path) -> the security scheme the route must name.
SECURED = {
    ("bank", "get", "/v1/account"): "loginToken",
    ("bank", "post", "/v1/withdraw"): "loginToken",
    ("bank", "post", "/v1/join-authorisation"): "loginToken",
    ("bank", "post", "/v1/redeem/request"): "loginToken",  # issue 12 (#5): redeem
    ("bank", "post", "/v1/redeem"): "loginToken",
    ("centralbank", "post", "/v1/certify"): "adminToken",
    ("centralbank", "post", "/v1/certify-tls"): "adminToken",
    ("centralbank", "post", "/v1/certify-issuer-epoch"): "adminToken",
    ("centralbank", "post", "/v1/revoke"): "adminToken",
    ("issuer", "get", "/v1/members"): "membersToken",
    ("merchant", "post", "/v1/products"): "adminToken",
    ("merchant", "post", "/v1/refunds"): "adminToken",  # issue 12 (#3): refund permissions
    ("supervision", "post", "/v1/open"): "openToken",
}


def _factories(tmp: Path) -> dict[str, Callable[..., FastAPI]]:
    """Each party's real app factory (no lifespan is run: documents and early refusals only)."""

    def settings(cls: type[Any], name: str, **kw: Any) -> Any:
        return cls(data_dir=tmp / name, **kw)

    return {
        "bank": lambda **kw: create_bank_app(
            types.SimpleNamespace(db=None),
            settings(BankSettings, "bank", **kw),
        ),
        "centralbank": lambda **kw: create_centralbank_app(
            settings(CentralBankSettings, "centralbank", **kw)
        ),
        "issuer": lambda **kw: create_issuer_app(settings(IssuerSettings, "issuer", **kw)),
        "merchant": lambda **kw: create_merchant_app(settings(MerchantSettings, "merchant", **kw)),
        "supervision": lambda **kw: create_supervision_app(
            settings(SupervisionSettings, "supervision", **kw)
        ),
        "ttp": lambda **kw: create_ttp_app(settings(TtpSettings, "ttp", **kw)),
    }


PARTIES = ["bank", "centralbank", "issuer", "merchant", "supervision", "ttp"]


@pytest.fixture(scope="module")
def factories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Callable[..., FastAPI]]:
    return _factories(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(scope="module")
def apps(factories: dict[str, Callable[..., FastAPI]]) -> dict[str, FastAPI]:
    return {name: make() for name, make in factories.items()}


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _api_routes(app: FastAPI) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]


# --- the documents ---------------------------------------------------------------------------


@pytest.mark.parametrize("party", PARTIES)
def test_document_validates(apps: dict[str, FastAPI], party: str) -> None:
    doc = apps[party].openapi()
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"].startswith("3.1")
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert '"422"' not in json.dumps(doc)


@pytest.mark.parametrize("party", PARTIES)
def test_every_route_documents_its_errors_with_examples(
    apps: dict[str, FastAPI], party: str
) -> None:
    """Walk the routes: what each declares is in the document, every error status has the
    ErrorBody schema, one valid example per code, and the codes in its description."""
    app = apps[party]
    doc = app.openapi()
    routes = _api_routes(app)
    assert routes
    for route in routes:
        assert route.responses, f"{route.path} declares no errors"
        declared: dict[str, set[str]] = {}
        for status, entry in route.responses.items():
            examples = entry.get("content", {}).get(JSON, {}).get("examples", {})
            if int(status) >= 400:
                assert examples, f"{route.path} {status}: no example"
                declared[str(status)] = set(examples)
        for method in route.methods:
            op = doc["paths"][route.path_format][method.lower()]
            documented = documented_codes(doc, route.path_format, method)
            for status, codes in declared.items():
                assert codes <= documented.get(status, set()), (route.path, status)
            assert "internal.error" in documented["500"]
            if op.get("parameters") or "requestBody" in op:
                assert "input.invalid" in documented["400"], route.path
            if route.body_field is not None:
                assert "encoding.invalid" in documented["400"], route.path
                assert documented["413"] == {"input.too_large"}, route.path
            for status, entry in op["responses"].items():
                if int(status) < 400:
                    continue
                media = entry["content"][JSON]
                assert media["schema"] == {"$ref": ERROR_REF}, (route.path, status)
                for code, example in media["examples"].items():
                    body = ErrorBody.model_validate(example["value"])
                    assert body.code == code and body.message, (route.path, code)
                    assert f"`{code}`" in entry["description"], (route.path, code)


@pytest.mark.parametrize("party", PARTIES)
def test_security_schemes(apps: dict[str, FastAPI], party: str) -> None:
    doc = apps[party].openapi()
    schemes = doc["components"].get("securitySchemes", {})
    for path, method, op in _operations(doc):
        wanted = SECURED.get((party, method, path))
        if wanted is None:
            assert "security" not in op, (path, method)
            continue
        assert op["security"] == [{wanted: []}], (path, method)
        assert schemes[wanted]["type"] == "http" and schemes[wanted]["scheme"] == "bearer"
        assert "authorization" not in json.dumps(op.get("parameters", [])).lower()
        assert "401" in op["responses"], (path, method)


@pytest.mark.parametrize("party", PARTIES)
def test_bodies_and_answers_are_typed(apps: dict[str, FastAPI], party: str) -> None:
    """No untyped ``object`` where a body or a JSON answer is: each is a named schema."""
    doc = apps[party].openapi()
    for path, method, op in _operations(doc):
        ok = op["responses"]["200"]["content"]
        if JSON in ok:
            assert set(ok[JSON]["schema"]) == {"$ref"}, (path, method)
        body = op.get("requestBody", {}).get("content", {}).get(JSON)
        if body is not None:
            assert set(body["schema"]) == {"$ref"}, (path, method)


def test_signed_objects_and_sealed_boxes_are_described(apps: dict[str, FastAPI]) -> None:
    schemas = apps["merchant"].openapi()["components"]["schemas"]
    signed = schemas["PayBody"]["properties"]["request"]
    assert set(signed["required"]) == {"kind", "body", "signature", "signer"}
    box = schemas["PayOut"]["properties"]["content_key"]["anyOf"][0]
    assert set(box["required"]) == {"epk", "nonce", "ct"}
    ttp = apps["ttp"].openapi()["components"]["schemas"]
    assert set(ttp["DisputeBody"]["properties"]["request"]["properties"]) == set(
        SignedObject.model_fields
    )
    assert set(ttp["RegistrationOut"]["properties"]["sealed_key"]["properties"]) == set(
        SealedBox.model_fields
    )


def test_merchant_passes_through_only_codes_the_bank_documents(apps: dict[str, FastAPI]) -> None:
    bank = apps["bank"].openapi()
    answered = {
        (status, code)
        for path in ("/v1/deposit", "/v1/reserve")
        for status, codes in documented_codes(bank, path, "post").items()
        for code in codes
    }
    for doc in BANK_REFUSALS:
        assert (str(doc.status), doc.code) in answered, doc.code
    merchant = documented_codes(apps["merchant"].openapi(), "/v1/pay", "post")
    for doc in BANK_REFUSALS:
        assert doc.code in merchant[str(doc.status)]


# --- the JSON the typed answers send -------------------------------------------------------


SIGNED = {"kind": "k", "body": {"a": 1, "b": [1, 2]}, "signature": "c2ln", "signer": "x"}
BOX = {"epk": "ZXBr", "nonce": "bm9uY2U", "ct": "Y3Q"}


def _records() -> list[tuple[type[BaseModel], dict[str, Any]]]:
    view = tm.DisputeView(
        dispute_id="d-1",
        preq=b"\x01" * 32,
        product_id="p-1",
        merchant_id="shop",
        state="resolved",
        deadline=10,
        created_at=1,
        resolved_at=11,
        resolution="escrow",
        merchant_answer="wrong_key",
        reply_key=b"\x02" * 32,
        sealed_key=BOX,
    )
    pending = tm.DisputeView(
        "d-2", b"\x03" * 32, "p-1", "shop", "pending", 10, 1, None, None, None, b"\x04" * 32
    )
    product = CatalogueProduct(
        product_id="p-1",
        title="t",
        price=5,
        currency="EUR",
        ciphertext_sha256=b"\x05" * 32,
        ciphertext=b"ct",
        content_key=b"\x06" * 32,
        descriptor=SIGNED,
        ttp_cert="PEM",
        ttp_key_id="kid",
        ttp_url=None,
        registered_at=1,
    )
    entry = BlacklistEntry(7, "merchant:shop", 1, "3 failures", (1, 2, 3), 3, 60, 5, "sup", "ok")
    return [
        (tm.TtpInfoOut, tm.TtpInfo("ttp", "PEM", 3600).to_dict()),
        (tm.TtpStatsOut, tm.TtpStats({"registrations": 2}).to_dict()),
        (tm.RegistrationOut, tm.RegistrationAnswer(SIGNED, "PEM", b"\x00ct", BOX).to_dict()),
        (tm.ProductOut, tm.ProductAnswer(SIGNED, "PEM").to_dict()),
        (tm.ProductListOut, tm.ProductList([SIGNED, SIGNED], "PEM").to_dict()),
        (tm.DisputeViewOut, view.to_dict()),
        (tm.DisputeViewOut, pending.to_dict()),
        (tm.DisputeListOut, {"disputes": [view.to_dict(), pending.to_dict()]}),
        (tm.DisputeKeyOut, tm.DisputeKey("d-1", b"\x01" * 32, "p-1", "escrow", BOX).to_dict()),
        (tm.StrikeListOut, {"strikes": [tm.Strike(1, "shop", "d-1", "no_key", 9).to_dict()]}),
        (tm.CiphertextOut, {"product_id": "p-1", "ciphertext": "Y3Q"}),
        (mm.MerchantInfoOut, mm.MerchantInfo("shop", "PEM", ("EUR", "USD")).to_dict()),
        (mm.SignedRequestOut, mm.SignedRequest(SIGNED, "PEM").to_dict()),
        (mm.PayOut, mm.PaymentAnswer(SIGNED, "PEM").to_dict()),
        (mm.PayOut, mm.PaymentAnswer(SIGNED, "PEM", BOX).to_dict()),
        (mm.KeyAnswerOut, mm.KeyAnswerReply(SIGNED, "PEM").to_dict()),
        (mm.ProductOut, product.listing()),
        (mm.ProductListOut, {"products": [product.listing()]}),
        (mm.CiphertextOut, {"product_id": "p-1", "ciphertext": "Y3Q"}),
        (BlacklistEntryAnswer, entry.to_dict()),
        (TtpDepositAnswer, {"answer": SIGNED, "cert": "PEM"}),
    ]


def test_typed_answers_send_the_same_json_as_to_dict() -> None:
    """Through FastAPI's own response serialisation: a route returning the record's dict with
    the response model sends exactly the JSON the dict is."""
    app = FastAPI()
    records = _records()
    for i, (model, data) in enumerate(records):

        def endpoint(data: dict[str, Any] = data) -> dict[str, Any]:
            return data

        app.add_api_route(f"/r{i}", endpoint, methods=["GET"], response_model=model)
    with TestClient(app) as client:
        for i, (model, data) in enumerate(records):
            sent = client.get(f"/r{i}")
            assert sent.status_code == 200, (model.__name__, sent.text)
            assert sent.json() == json.loads(json.dumps(data)), model.__name__


# --- /docs and /redoc --------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_from_the_service(apps: dict[str, FastAPI], page: str) -> None:
    client = TestClient(apps["ttp"])  # no lifespan: the pages need no domain
    html = client.get(page)
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert "http://" not in html.text and "https://" not in html.text
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html.text)
    refs += re.findall(r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""", html.text)
    assert "/openapi.json" in refs
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), ref
        asset = client.get(ref)
        assert asset.status_code == 200 and asset.content, ref


# --- real refusals are documented ---------------------------------------------------------------


class _NoDomain:
    """Stands in for a party's domain object: the refusals below come before it is used."""

    def __getattr__(self, name: str) -> Any:
        def used(*args: Any, **kwargs: Any) -> Any:
            pytest.fail(f"the domain was used ({name}) before the refusal")

        return used


def _client(app: FastAPI) -> TestClient:
    """A client without the lifespan (nothing is started; dependencies get a placeholder)."""
    app.state.bank = app.state.ttp = app.state.ca = _NoDomain()
    return TestClient(app, raise_server_exceptions=False)


def _refuse(app: FastAPI, method: str, url: str, template: str, code: str, **kw: Any) -> None:
    answer = _client(app).request(method, url, **kw)
    assert answer.status_code >= 400, answer.text
    assert answer.json()["code"] == code, answer.text
    documented = documented_codes(app.openapi(), template, method)
    assert code in documented.get(str(answer.status_code), set()), (template, code)


@pytest.mark.parametrize("party", PARTIES)
def test_body_refusals_are_documented(
    factories: dict[str, Callable[..., FastAPI]], party: str
) -> None:
    """Every route with a body: a malformed one (400) and an oversized one (413)."""
    app = factories[party]()
    limit = app.state.settings.max_body_bytes
    too_big = b'{"x": "' + b"a" * limit + b'"}'
    json_type = {"content-type": JSON}
    routes = [(p, m) for p, m, op in _operations(app.openapi()) if "requestBody" in op]
    assert routes
    for path, method in routes:
        if (party, method, path) in SECURED and party == "centralbank":
            continue  # the admin check (a dependency) answers before the body is read
        url = path.replace("{member_id}", "m-1").replace("{dispute_id}", "d-1")
        _refuse(app, method, url, path, "input.invalid", content=b"[1]", headers=json_type)
        _refuse(app, method, url, path, "input.too_large", content=too_big, headers=json_type)


def test_token_refusals_are_documented(factories: dict[str, Callable[..., FastAPI]]) -> None:
    wrong = {"authorization": "Bearer wrong-token-0123456789"}
    members = "/v1/members"
    # over TLS the bank's client certificate is the credential; the token only over plain HTTP
    _refuse(factories["issuer"](), "GET", members, members, "tls.client_certificate_required")
    plain = factories["issuer"](insecure_http=True)
    _refuse(plain, "GET", members, members, "issuer.members_disabled")
    issuer = factories["issuer"](members_token=MEMBERS_TOKEN, insecure_http=True)
    _refuse(issuer, "GET", members, members, "issuer.members_unauthorized", headers=wrong)

    certify = {"role": "bank", "name": "b", "public_key": "AA"}
    cb = factories["centralbank"]()
    _refuse(cb, "POST", "/v1/certify", "/v1/certify", "centralbank.admin_disabled", json=certify)
    cb = factories["centralbank"](admin_token_sha256=hash_admin_token(ADMIN_TOKEN))
    revoke = {"serial": "1"}
    _refuse(cb, "POST", "/v1/revoke", "/v1/revoke", "auth.admin_token_invalid", json=revoke)

    product = {"title": "t", "price": 1, "content": "AA"}
    products = "/v1/products"
    shop = factories["merchant"]()
    _refuse(shop, "POST", products, products, "merchant.admin_disabled", json=product)
    shop = factories["merchant"](admin_token=ADMIN_TOKEN)
    _refuse(shop, "POST", products, products, "merchant.admin_auth", json=product, headers=wrong)

    supervision = factories["supervision"]()
    bad = {"c1": "A", "c2": "A", "reason": "r"}
    _refuse(supervision, "POST", "/v1/open", "/v1/open", "encoding.invalid", json=bad)
    good = {"c1": "A" * 87, "c2": "A" * 87, "reason": "r"}
    supervision.state.open_token = None  # what start-up sets from the settings
    _refuse(supervision, "POST", "/v1/open", "/v1/open", "supervision.open_disabled", json=good)
    supervision.state.open_token = OPEN_TOKEN
    _refuse(
        supervision, "POST", "/v1/open", "/v1/open", "supervision.unauthorized",
        json=good, headers=wrong,
    )  # fmt: skip

    bank = factories["bank"]()
    _refuse(bank, "GET", "/v1/account", "/v1/account", "auth.invalid_token")
    _refuse(bank, "GET", "/v1/coins/AAAA", "/v1/coins/{sigma}", "input.invalid")


#: Codes only test-only code answers (the demo's cheating shops), not a party service.
TEST_ONLY_CODES = {"merchant.key_withheld"}

#: Refusal tests that talk to the party apps over HTTP (TestClient or uvicorn in-process).
REFUSAL_SUITES = [
    "tests/integration/bank/test_bank_http.py",
    "tests/integration/centralbank/test_centralbank_service.py",
    "tests/integration/issuer/test_join_refusals.py",
    "tests/integration/issuer/test_join_http.py",
    "tests/integration/merchant/test_merchant_service.py",
    "tests/integration/supervision/test_supervision.py",
    "tests/e2e/test_e2e_payment.py",
    "tests/e2e/test_fair_exchange_e2e.py",
]


@pytest.mark.slow
def test_refusal_suites_answer_only_documented_codes(tmp_path: Path) -> None:
    """Run the parties' refusal tests with the error recorder (tests/support/error_recorder.py)
    and require every (route, status, code) they provoked to be in that app's document."""
    root = Path(__file__).resolve().parents[3]
    record = tmp_path / "errors.jsonl"
    env = {**os.environ, "ECASH_ERROR_RECORD": str(record), "PYTHONPATH": str(root / "tests")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "support.error_recorder",
         "-p", "no:cacheprovider", *REFUSAL_SUITES],
        cwd=root, env=env, capture_output=True, text=True, timeout=3000,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    lines = record.read_text(encoding="utf-8").splitlines()
    from support.error_recorder import undocumented

    parties = {f"ecash-tpm {p}" for p in PARTIES}
    rows = [json.loads(line) for line in lines]
    assert any(r["app"] in parties for r in rows), "no refusal was recorded"
    missing = undocumented(lines, apps=parties, allowed=TEST_ONLY_CODES)
    assert not missing, json.dumps(missing, indent=1)
