"""Shared fixtures: a hermetic swtpm per test session, more on demand, and an open TpmDevice.

Tests marked ``swtpm`` / ``tpm2tools`` are skipped only when the binaries are missing (CI has
them); everything else about the emulator must work or fail loudly.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ecash_tpm.swtpm import SwtpmInstance, missing_binaries

if TYPE_CHECKING:
    from ecash_tpm.device import TpmDevice

TPM2_TOOLS = ("tpm2_checkquote", "tpm2_makecredential")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing_sw = missing_binaries()
    missing_tools = [b for b in TPM2_TOOLS if shutil.which(b) is None]
    skip_sw = pytest.mark.skip(reason=f"swtpm not installed ({', '.join(missing_sw)} missing)")
    skip_tools = pytest.mark.skip(
        reason=f"tpm2-tools not installed ({', '.join(missing_tools)} missing)"
    )
    for item in items:
        if missing_sw and "swtpm" in item.keywords:
            item.add_marker(skip_sw)
        if missing_tools and "tpm2tools" in item.keywords:
            item.add_marker(skip_tools)


SwtpmFactory = Callable[..., SwtpmInstance]


@pytest.fixture(scope="session")
def swtpm_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwtpmFactory]:
    """``factory(start=True)`` -> a new independent provisioned swtpm (e.g. a second TPM).

    Every instance is stopped and its directory (CA included) removed at session end.
    """
    made: list[SwtpmInstance] = []

    def factory(*, start: bool = True, provision: bool = True) -> SwtpmInstance:
        inst = SwtpmInstance(tmp_path_factory.mktemp("swtpm"))
        made.append(inst)
        if provision:
            inst.provision()
        if start:
            inst.start()
        return inst

    yield factory
    for inst in made:
        inst.cleanup()


@pytest.fixture(scope="session")
def swtpm(swtpm_factory: SwtpmFactory) -> SwtpmInstance:
    """The session's running emulator (RSA-2048 and ECC P-384 EKs with certificates)."""
    if missing_binaries():
        pytest.skip(f"swtpm not installed ({', '.join(missing_binaries())} missing)")
    return swtpm_factory()


@pytest.fixture
def tpm(swtpm: SwtpmInstance) -> Iterator[TpmDevice]:
    """An open TpmDevice on the session swtpm, closed after the test.

    swtpm serves one connection at a time: do not open a second device on ``swtpm.tcti``
    while this one is in use (it would wait forever).
    """
    from ecash_tpm.device import TpmDevice

    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="session")
def tpm_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir for AK/DAA blobs shared by the session (keys are created once)."""
    return tmp_path_factory.mktemp("tpm-keys")
