"""Run the simulated cluster: a store, its API server over HTTPS, a node agent, the controllers and kube-proxy.

With its node agent, the cluster also runs what a real one runs beside its kubelets: the
controller manager (``fakes.controllers``: Deployments, ReplicaSets, endpoints), as the user
``system:kube-controller-manager`` with its controllers' service accounts, and the service
proxy (``fakes.node.proxy``: NodePort Services on 127.0.0.1), as ``system:kube-proxy``.  The
node runs the base, kernel and gateway images (``fakes.node.gateway_image``) and gives pods
their service account's files, so ``kubectl apply -f manifests/enterprise-gateway.yaml`` runs
the gateway's Deployment.

Two ways to run it:

* inside the caller's event loop (tests, the gateway's embedded default)::

      async with SimulatedCluster() as cluster:
          cluster.url, cluster.kubeconfig_path, cluster.admin_token, cluster.store

* on a thread with its own event loop, for synchronous callers (kubectl
  from blocking code, the ``kubernetes`` client without asyncio)::

      with SimulatedClusterThread() as cluster: ...

The store belongs to the loop it runs on: code on other threads reaches it
only over HTTPS, or through :meth:`SimulatedClusterThread.call`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from fakes.apiserver import kubeconfig
from fakes.apiserver.server import ApiServer
from fakes.auth.bootstrap_roles import KUBE_CONTROLLER_MANAGER, KUBE_PROXY
from fakes.auth.identity import AUTHENTICATED, UserInfo, node_user, service_account_user
from fakes.controllers.manager import ControllerManager
from fakes.memory import MemoryCluster
from fakes.node.gateway_image import repository_image_map
from fakes.node.images import ImageMap
from fakes.node.kubelet import NodeAgent
from fakes.node.proxy import ServiceProxy
from fakes.state.store import Store
from gateway.cluster.interface import Cluster

T = TypeVar("T")
DEFAULT_NODE = "kernelgate-node"


class SimulatedCluster:
    """The simulated cluster as an async context manager.

    ``kubeconfig_path`` defaults to a file in a temporary state directory that
    is removed on exit; ``users`` (name -> token) adds contexts for other
    identities to the kubeconfig.  ``node_agent=False`` leaves pods unscheduled
    (no processes run); otherwise one node agent named ``node_name`` runs the
    pods bound to it with ``images`` (default: base, kernel and gateway images),
    and exiting stops it (its pod processes terminated).  ``controllers`` and
    ``service_proxy`` run the controller manager and kube-proxy (default: when
    the node agent runs).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        state_dir: str | Path | None = None,
        node_agent: bool = True,
        node_name: str = DEFAULT_NODE,
        store: Store | None = None,
        users: Mapping[str, str] | None = None,
        admin_token: str | None = None,
        images: ImageMap | None = None,
        controllers: bool | None = None,
        service_proxy: bool | None = None,
    ) -> None:
        self.store = store if store is not None else Store()
        self.server = ApiServer(self.store, host=host, port=port, admin_token=admin_token)
        self._own_state_dir = state_dir is None
        self.state_dir = Path(state_dir) if state_dir is not None else Path(tempfile.mkdtemp(prefix="kernelgate-cluster-"))
        self.kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else self.state_dir / "kubeconfig"
        self.ca_path = self.state_dir / "ca.crt"
        self.node_name = node_name
        self._want_node_agent = node_agent
        self._want_controllers = node_agent if controllers is None else controllers
        self._want_proxy = node_agent if service_proxy is None else service_proxy
        self.images = images
        self._users = dict(users or {})
        self.node_agent: NodeAgent | None = None
        self.controller_manager: ControllerManager | None = None
        self.service_proxy: ServiceProxy | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def admin_token(self) -> str:
        return self.server.admin_token

    @property
    def ca_pem(self) -> bytes:
        return self.server.ca_pem

    def write_kubeconfig(self, path: str | Path | None = None, **users: str) -> Path:
        """(Re)write a kubeconfig for this cluster: the admin plus ``users`` (name -> token)."""
        self._users.update(users)
        return kubeconfig.write(
            path or self.kubeconfig_path, self.url, self.ca_pem, self.admin_token, users=self._users
        )

    async def start(self) -> None:
        """Start the API server, write the kubeconfig and CA file, then the controllers, the node agent, the proxy."""
        await asyncio.to_thread(self.state_dir.mkdir, parents=True, exist_ok=True)
        await self.server.start()
        await asyncio.to_thread(self.server.certificate.write_ca, self.ca_path)
        await asyncio.to_thread(self.write_kubeconfig)
        if self._want_controllers:
            self.controller_manager = ControllerManager(self._as_user(KUBE_CONTROLLER_MANAGER), self._as_account)
            await self.controller_manager.start()
        if self._want_node_agent:
            images = self.images if self.images is not None else repository_image_map()
            self.node_agent = NodeAgent(
                MemoryCluster(self.store, node_user(self.node_name)), node_name=self.node_name, store=self.store,
                images=images, api_server_url=self.url, api_ca_pem=self.ca_pem,
            )
            await self.node_agent.start()
            # As a real API server dials the kubelet of a pod's node for exec, attach, port-forward and followed logs.
            self.server.kubelets[self.node_name] = self.node_agent.streaming
        if self._want_proxy:
            self.service_proxy = ServiceProxy(self._as_user(KUBE_PROXY))
            await self.service_proxy.start()

    def _as_user(self, name: str) -> Cluster:
        return MemoryCluster(self.store, UserInfo(name, (AUTHENTICATED,)))

    def _as_account(self, namespace: str, name: str, uid: str) -> Cluster:
        return MemoryCluster(self.store, service_account_user(namespace, name, uid))

    async def stop(self) -> None:
        """Stop the proxy, the controllers, the node agent (terminating pod processes), then the API server."""
        try:
            if self.service_proxy is not None:
                await self.service_proxy.stop()
                self.service_proxy = None
            if self.controller_manager is not None:
                await self.controller_manager.stop()
                self.controller_manager = None
            if self.node_agent is not None:
                self.server.kubelets.pop(self.node_name, None)
                await self.node_agent.stop()
                self.node_agent = None
        finally:
            await self.server.stop()
            if self._own_state_dir:
                await asyncio.to_thread(shutil.rmtree, self.state_dir, True)

    async def __aenter__(self) -> SimulatedCluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SimulatedClusterThread:
    """A :class:`SimulatedCluster` on a daemon thread with its own event loop.

    ``with SimulatedClusterThread(**kwargs) as cluster:`` starts it and waits
    until it serves (at most ``start_timeout`` seconds); leaving the block stops
    it and joins the thread.  ``kwargs`` are :class:`SimulatedCluster`'s;
    ``store_factory`` makes the store on the cluster's own thread.  ``cluster.call(coroutine_function)`` runs code on
    the cluster's loop (to reach the store) and returns its result.
    """

    def __init__(
        self, *, start_timeout: float = 30.0, store_factory: Callable[[], Store] | None = None, **kwargs: Any
    ) -> None:
        self._kwargs = kwargs
        self._store_factory = store_factory
        self._start_timeout = start_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: concurrent.futures.Future[SimulatedCluster] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self.cluster: SimulatedCluster | None = None

    def __getattr__(self, name: str) -> Any:
        # url, kubeconfig_path, admin_token, store, ... of the running cluster
        if name.startswith("_") or self.__dict__.get("cluster") is None:
            raise AttributeError(name)
        return getattr(self.__dict__["cluster"], name)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            kwargs = dict(self._kwargs)
            if self._store_factory is not None:
                kwargs["store"] = self._store_factory()
            cluster = SimulatedCluster(**kwargs)
            async with cluster:
                self.cluster = cluster
                self._ready.set_result(cluster)
                await self._stop.wait()
        except BaseException as err:
            if not self._ready.done():
                self._ready.set_exception(err)
            else:
                raise

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run ``fn()`` on the cluster's loop and wait for its result."""
        assert self._loop is not None
        async def run() -> T:
            return await fn()
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def start(self) -> SimulatedCluster:
        self._thread = threading.Thread(target=self._run, name="kernelgate-simulated-cluster", daemon=True)
        self._thread.start()
        return self._ready.result(self._start_timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> SimulatedClusterThread:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
