"""``BankClient.issuer_epoch`` (docs/protocol.md §3.6): a 200 answer of the wrong shape is a
typed ``remote.bad_response`` (review finding 8), never a KeyError/TypeError that a merchant or
the TTP would turn into a 500; the public check then refuses the coin as retryable (503)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ecash_tpm.clients.bank import BankClient
from ecash_tpm.clients.epochs import CertifiedEpochKeys
from ecash_tpm.errors import EcashError
from ecash_tpm.service.errors import RemoteCallError


def _client(answer: Any) -> BankClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/issuer-epochs/3"
        return httpx.Response(200, json=answer)

    return BankClient("http://bank.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    "answer", [{}, {"certificate": None}, {"certificate": [1, 2]}, [1], "text", 7]
)
def test_malformed_epoch_answers_are_typed(answer: Any) -> None:
    client = _client(answer)
    try:
        with pytest.raises(RemoteCallError) as exc:
            client.issuer_epoch(3)
        assert (exc.value.code, exc.value.status) == ("remote.bad_response", 200)
        keys = CertifiedEpochKeys(client.issuer_epoch, b"not a root")
        with pytest.raises(EcashError) as refused:
            keys(3)
        assert (refused.value.code, refused.value.http_status) == ("issuer_epoch.unavailable", 503)
        assert refused.value.detail["cause"] == "remote.bad_response"
    finally:
        client.close()


def test_a_well_shaped_answer_is_returned() -> None:
    client = _client({"certificate": {"kind": "issuer-epoch-key", "body": {}}})
    try:
        assert client.issuer_epoch(3) == {"kind": "issuer-epoch-key", "body": {}}
    finally:
        client.close()
