"""Targets of the scenarios: ``--cluster=memory,apiserver`` (the default), ``replicas``, ``kube`` or ``kind``.

Every scenario runs once per target named by ``--cluster`` (comma-separated).
Fixtures give a scenario an :class:`~scenarios.targets.Endpoint`:

* ``gateway``: the gateway as deployed (a namespace per kernel), one per module;
* ``shared_gateway``: one with ``EG_SHARED_NAMESPACE=True``;
* ``culling_gateway``: one that culls kernels idle for a few seconds;

and ``client`` / ``shared_client`` / ``culling_client``, a
:class:`~scenarios.client.GatewayClient` of each.  The targets live for the
whole session on one event loop (every scenario module is marked
``asyncio(loop_scope="session")``).  ``kind`` is replayed by ``e2e/``, which
deploys the gateways and names them in ``KERNELGATE_KIND_TARGET``.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from e2e.kube.fixture import kube_cluster  # noqa: F401 - the session fixture of the kube target

from .client import GatewayClient
from .observe import every_kernel_object, only_these_left
from .targets import ApiServerTarget, Endpoint, KindTarget, KubeTarget, MemoryTarget, ReplicasTarget, work_dir
from .variants import CULLING, DEFAULT, SHARED, Variant

TARGETS = ("memory", "apiserver", "replicas", "kube", "kind")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        names = [n.strip() for n in metafunc.config.getoption("clusters").split(",") if n.strip()]
        unknown = [n for n in names if n not in TARGETS]
        if unknown:
            raise pytest.UsageError(f"--cluster: unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
        metafunc.parametrize("target", names, indirect=True, scope="session")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def target(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    name = request.param
    if name in ("apiserver", "replicas", "kube") and shutil.which("kubectl") is None:
        pytest.skip(f"the {name} target applies the manifests with kubectl, which is not installed")
    directory = work_dir()
    if name == "memory":
        found: object = MemoryTarget(directory)
    elif name == "apiserver":
        found = ApiServerTarget(directory)
    elif name == "replicas":
        found = ReplicasTarget(directory)
    elif name == "kube":
        found = KubeTarget(directory, request.getfixturevalue("kube_cluster"))
    else:
        found = KindTarget()
    start = getattr(found, "start", None)
    if start is not None:
        await start()
    try:
        yield found
    finally:
        if start is not None:
            await found.stop()  # type: ignore[attr-defined]
        shutil.rmtree(directory, ignore_errors=True)


async def _gateway(target: object, variant: Variant) -> AsyncIterator[Endpoint]:
    async with target.gateway(variant) as endpoint:  # type: ignore[attr-defined]
        before = await every_kernel_object(endpoint.observer)
        yield endpoint
        # Every scenario shuts down what it started: nothing new labelled for a kernel stays behind
        # (an object being deleted is not gone yet: it is awaited, within the target's wait).
        left = await only_these_left(endpoint.observer, before, timeout=endpoint.wait)
        assert not left, f"kernel objects left behind by the scenarios of this module: {sorted(left)}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(target: object) -> AsyncIterator[Endpoint]:
    async for endpoint in _gateway(target, DEFAULT):
        yield endpoint


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared_gateway(target: object) -> AsyncIterator[Endpoint]:
    async for endpoint in _gateway(target, SHARED):
        yield endpoint


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def culling_gateway(target: object) -> AsyncIterator[Endpoint]:
    async for endpoint in _gateway(target, CULLING):
        yield endpoint


def _client(endpoint: Endpoint) -> GatewayClient:
    return GatewayClient(endpoint.url, endpoint.token, wait=endpoint.wait)


@pytest.fixture
def client(gateway: Endpoint) -> GatewayClient:
    return _client(gateway)


@pytest.fixture
def shared_client(shared_gateway: Endpoint) -> GatewayClient:
    return _client(shared_gateway)


@pytest.fixture
def culling_client(culling_gateway: Endpoint) -> GatewayClient:
    return _client(culling_gateway)
