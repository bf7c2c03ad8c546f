"""A pod's own view of the node: its hostname, its ``/etc/hosts`` and its service account's credentials.

A kubelet gives every pod its own UTS namespace (the hostname is the pod's), a managed
``/etc/hosts`` naming the pod's IP, and the pod's projected volumes where its containers mount them.
ServiceAccount admission gives every pod one (``kube-api-access-xxxxx`` at
``/var/run/secrets/kubernetes.io/serviceaccount``: ``fakes.state.admission``), whose sources this
node fills as a kubelet does (``pkg/volume/projected/projected.go`` ``collectData``): a token of the
pod's service account from the TokenRequest API (renewed before it expires), ``ca.crt`` from the
namespace's ``kube-root-ca.crt`` ConfigMap, and the pod's ``namespace`` from the downward API: what
``KUBERNETES_SERVICE_HOST``/``PORT`` and the official clients' in-cluster configuration expect.
A pod whose volume cannot be filled yet (the ConfigMap not published, the account gone) waits, as the
kubelet's ``FailedMount`` does.

On the simulated node the pod's processes are processes of this host, so each container is
started through ``unshare --mount --uts --propagation private`` (util-linux): in a mount
namespace of its own, the pod's files are bind-mounted (read-only, as a kubelet mounts projected
volumes) where the container mounts them and the hostname is set, then the container's program
is executed in place (its pid stays the container's).  The host keeps its own files; only a
volume's mount point is created on it when missing (an empty directory).  That needs root; elsewhere pods run as before, without
these files (the node agent says so once).
A pod with an address of its own also gets that address's network rules for its Python programs:
``fakes/node/podnet`` goes first on each container's ``PYTHONPATH`` and ``SIMULATED_POD_IP`` names
the address, so wildcard binds to a given port land on it and connections into the simulated cluster
leave from it (see ``fakes/node/podnet/sitecustomize.py``, and there why no network namespace).
The pod worker (``fakes.node.podworker``) calls :meth:`PodSandbox.prepare` before a pod's first
container starts, :meth:`PodSandbox.container_env` and :meth:`PodSandbox.command` for each container.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
from pathlib import Path

from fakes.node.context import API_TIMEOUT, NodeContext
from gateway.cluster.interface import ClusterError, NotFound, Obj

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where ServiceAccount admission mounts a pod's token volume (the path in-cluster clients read)."""
POD_NETWORK = Path(__file__).resolve().parent / "podnet"
"""The ``sitecustomize`` that gives a pod's Python programs the pod's address (wildcard binds, outgoing connections)."""
POD_ADDRESS_VARIABLE = "SIMULATED_POD_IP"
"""Names the pod's address for that module (``fakes.node.podnet.sitecustomize.ADDRESS_VARIABLE``)."""
TOKEN_SECONDS = 3600
"""A token source's lifetime when it names none (``SetDefaults_ServiceAccountTokenProjection``)."""
RENEW_AT = 0.8
"""A token is renewed once this share of its lifetime has passed (the kubelet's token manager)."""

# $1 hostname ("" keeps the host's), $2 hosts file ("" keeps the host's), $3 "1" when the container's own
# environment sets PWD (the shell would otherwise leave one behind), $4 how many volumes follow, each as its
# directory and its mount path; then argv.  Tools are named by their host paths: the container's PATH is not
# the node's.
_SETUP = """set -e
if [ -n "$1" ]; then printf %s "$1" > /proc/sys/kernel/hostname; fi
if [ -n "$2" ]; then {mount} --bind "$2" /etc/hosts; fi
if [ "$3" != 1 ]; then unset PWD; fi
volumes=$4
shift 4
while [ "$volumes" -gt 0 ]; do
  {mkdir} -p "$2"; {mount} --bind -o ro "$1" "$2"
  shift 2; volumes=$((volumes - 1))
done
exec "$@"
"""


class SandboxError(Exception):
    """The pod's volume could not be set up (the kubelet's ``FailedMount``)."""


@functools.cache
def _tools() -> dict[str, str] | None:
    """Host paths of the programs that set a pod's namespaces up, or ``None`` when one is missing."""
    found = {tool: shutil.which(tool) for tool in ("unshare", "mount", "mkdir", "sh")}
    return {tool: path for tool, path in found.items() if path} if all(found.values()) else None


def namespaces_available() -> bool:
    """Whether this host can give pods their own mount and UTS namespaces (root, with util-linux)."""
    return os.geteuid() == 0 and _tools() is not None


def hosts_file(pod: Obj, pod_ip: str, hostname: str) -> str:
    """The kubelet-managed ``/etc/hosts`` of a pod (pkg/kubelet/kubelet_pods.go ``managedHostsFileContent``)."""
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    spec = pod.get("spec") or {}
    subdomain = spec.get("subdomain")
    if subdomain:
        namespace = pod["metadata"]["namespace"]
        lines.append(f"{pod_ip}\t{hostname}.{subdomain}.{namespace}.svc.cluster.local\t{hostname}")
    else:
        lines.append(f"{pod_ip}\t{hostname}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        lines.extend(f"{a.get('ip', '')}\t{chr(9).join(a.get('hostnames') or [])}" for a in aliases)
    return "\n".join(lines) + "\n"


def projected_volumes(spec: Obj) -> dict[str, list[Obj]]:
    """The pod's projected volumes that some container or init container mounts: name -> sources."""
    mounted = {m.get("name") for key in ("initContainers", "containers") for c in spec.get(key) or []
               for m in c.get("volumeMounts") or []}
    return {v["name"]: list((v.get("projected") or {}).get("sources") or []) for v in spec.get("volumes") or []
            if isinstance(v.get("projected"), dict) and v.get("name") in mounted}


class PodSandbox:
    """The namespaces and files of one pod; ``isolated`` says whether its containers get them."""

    def __init__(self, ctx: NodeContext, pod: Obj, pod_ip: str | None, hostname: str, root: Path) -> None:
        self.ctx = ctx
        self.pod = pod
        self.pod_ip = pod_ip
        self.hostname = hostname
        self.root = root
        spec = pod.get("spec") or {}
        self.isolated = ctx.isolate_pods and pod_ip is not None
        self.host_network = bool(spec.get("hostNetwork"))
        self.account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        self.volumes = projected_volumes(spec) if self.isolated else {}
        self._mounts = {c.get("name"): [(m["name"], m["mountPath"]) for m in c.get("volumeMounts") or []
                                        if m.get("name") in self.volumes and m.get("mountPath")]
                        for key in ("initContainers", "containers") for c in spec.get(key) or []}
        self._token_expires = 0.0
        self._token_lifetime = float("inf")  # the shortest lifetime of its tokens, once it has asked for them

    def volume_dir(self, name: str) -> Path:
        """Where the node keeps the files of the pod's volume ``name``."""
        return self.root / "volumes" / name

    @property
    def has_tokens(self) -> bool:
        """Whether a volume of the pod holds a service-account token (which :meth:`keep_token_fresh` renews)."""
        return any("serviceAccountToken" in source for sources in self.volumes.values() for source in sources)

    @property
    def temp_dir(self) -> Path:
        """The pod's own temporary files (a container's ``/tmp`` is its own on a real node): ``TMPDIR``."""
        return self.root / "tmp"

    def with_temp_dir(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with ``TMPDIR`` naming :attr:`temp_dir`, unless the pod spec sets ``TMPDIR`` itself.

        Part of :meth:`container_env`: what a container writes to its temporary directory (a kernel's
        connection file, holding its signing key) goes with the pod (:meth:`remove`).
        """
        return env if "TMPDIR" in env else {**env, "TMPDIR": str(self.temp_dir)}

    def with_pod_network(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the pod's network rules for Python (``fakes/node/podnet``) when the pod has its own address.

        A host-network pod shares the node's address: its ``env`` is left as it is.
        """
        if self.pod_ip is None or self.host_network:
            return env
        entries = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
        path = os.pathsep.join([str(POD_NETWORK), *(entry for entry in entries if entry != str(POD_NETWORK))])
        return {**env, "PYTHONPATH": path, POD_ADDRESS_VARIABLE: self.pod_ip}

    def container_env(self, env: dict[str, str]) -> dict[str, str]:
        """The environment a container of this pod runs with: ``env`` (the image's and the pod spec's), with
        :meth:`with_temp_dir` and :meth:`with_pod_network`.  Called by the pod worker for every container."""
        return self.with_pod_network(self.with_temp_dir(env))

    async def remove(self) -> None:
        """Delete the pod's temporary files: called by the pod worker once every container has ended for good."""
        await asyncio.to_thread(shutil.rmtree, self.temp_dir, True)

    @property
    def hosts_path(self) -> Path:
        return self.root / "etc-hosts"

    async def prepare(self) -> None:
        """Make the pod's temporary directory; write its hosts file and fill its projected volumes.

        Called by the pod worker before the pod's first container, again after a failure.  Raises
        :class:`SandboxError` when a volume cannot be filled (no such service account, no such ConfigMap...).
        """
        await asyncio.to_thread(functools.partial(self.temp_dir.mkdir, mode=0o700, parents=True, exist_ok=True))
        if not self.isolated:
            return
        if not self.host_network:
            assert self.pod_ip is not None
            await asyncio.to_thread(_write, self.hosts_path, hosts_file(self.pod, self.pod_ip, self.hostname))
        for name, sources in self.volumes.items():
            await self._fill(name, sources)

    async def _fill(self, volume: str, sources: list[Obj]) -> None:
        """Write every file of one projected volume (``projected.go`` ``collectData``): tokens last, so that a
        volume whose other sources fail asks for no token."""
        files: dict[str, str] = {}
        meta = self.pod["metadata"]
        for source in sources:
            if "configMap" in source:
                files.update(await self._config_map_files(volume, source["configMap"]))
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items") or []:
                    field_path = (item.get("fieldRef") or {}).get("fieldPath", "")
                    value = {"metadata.namespace": meta.get("namespace"), "metadata.name": meta.get("name"),
                             "metadata.uid": meta.get("uid")}.get(field_path)
                    if value is not None and item.get("path"):
                        files[item["path"]] = value
        await asyncio.to_thread(functools.partial(self.volume_dir(volume).mkdir, parents=True, exist_ok=True))
        for path, text in files.items():
            await asyncio.to_thread(_write, self._file(volume, path), text)
        for source in sources:
            token = source.get("serviceAccountToken")
            if token is not None:
                await self._write_token(volume, token)

    def _file(self, volume: str, path: str) -> Path:
        """Where a volume's file at ``path`` goes; :class:`SandboxError` for a path that would leave the volume
        (the API server refuses those: ``validateLocalDescendingPath``)."""
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise SandboxError(f'MountVolume.SetUp failed for volume "{volume}" : invalid path {path!r}')
        return self.volume_dir(volume) / path

    async def _config_map_files(self, volume: str, source: Obj) -> dict[str, str]:
        """The files a ``configMap`` source projects: its ``items`` (key -> path), else every key."""
        namespace = self.pod["metadata"]["namespace"]
        try:
            config_map = await asyncio.wait_for(self.ctx.cluster.get("configmaps", source.get("name", ""),
                                                                     namespace=namespace), API_TIMEOUT)
        except (ClusterError, asyncio.TimeoutError) as err:
            if source.get("optional") and isinstance(err, NotFound):
                return {}
            raise SandboxError(f'MountVolume.SetUp failed for volume "{volume}" : {_reason(err)}') from err
        data = config_map.get("data") or {}
        items = source.get("items")
        if not items:
            return dict(data)
        files = {}
        for item in items:
            if item.get("key") not in data:
                if source.get("optional"):
                    continue
                raise SandboxError(f'MountVolume.SetUp failed for volume "{volume}" : configmap references non-existent '
                                   f'config key: {item.get("key")}')
            files[item.get("path") or item["key"]] = data[item["key"]]
        return files

    async def _write_token(self, volume: str, source: Obj) -> None:
        """Ask the TokenRequest API for a token of the pod's service account and write it at the source's path."""
        namespace = self.pod["metadata"]["namespace"]
        lifetime = int(source.get("expirationSeconds") or TOKEN_SECONDS)
        loop = asyncio.get_running_loop()
        try:
            token = await asyncio.wait_for(
                self.ctx.cluster.create_token(self.account, namespace, expiration_seconds=lifetime), API_TIMEOUT)
        except (ClusterError, asyncio.TimeoutError) as err:
            raise SandboxError(f'MountVolume.SetUp failed for volume "{volume}" : failed to fetch token: '
                               f"{err}") from err
        self._token_lifetime = min(self._token_lifetime, float(lifetime))
        self._token_expires = loop.time() + self._token_lifetime
        await asyncio.to_thread(_write, self._file(volume, str(source.get("path") or "token")), token)

    async def renew_token(self) -> None:
        """Ask the TokenRequest API for fresh tokens of the pod's service account and write them."""
        for name, sources in self.volumes.items():
            for source in sources:
                if "serviceAccountToken" in source:
                    await self._write_token(name, source["serviceAccountToken"])

    async def keep_token_fresh(self) -> None:
        """Renew the tokens when most of their lifetime has passed, for as long as the pod runs (a task of its
        worker, started once :meth:`prepare` has succeeded)."""
        if not self.has_tokens:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(1.0, (self._token_expires - loop.time()) - (1 - RENEW_AT) * self._token_lifetime))
            try:
                await self.renew_token()
            except SandboxError as err:
                log.warning("pod %s/%s: %s", self.pod["metadata"]["namespace"], self.pod["metadata"]["name"], err)
                await asyncio.sleep(self.ctx.backoff.initial)

    def command(self, argv: list[str], env: dict[str, str], container: str) -> list[str]:
        """The argv that runs ``argv`` inside the pod's namespaces with ``container``'s volumes mounted
        (``argv`` itself when not isolated).  Called by the pod worker for each container start and exec probe,
        and by the node's exec."""
        if not self.isolated:
            return argv
        own_uts = not self.host_network
        tools = _tools()
        assert tools is not None  # isolation is only on where they are
        script = _SETUP.format(mount=tools["mount"], mkdir=tools["mkdir"])
        mounts = self._mounts.get(container, [])
        return [
            tools["unshare"], "--mount", *(["--uts"] if own_uts else []), "--propagation", "private", "--",
            tools["sh"], "-c", script, "sh",
            self.hostname if own_uts else "",
            str(self.hosts_path) if own_uts else "",
            "1" if "PWD" in env else "0",
            str(len(mounts)),
            *(part for name, path in mounts for part in (str(self.volume_dir(name)), path)),
            *argv,
        ]


def _reason(err: BaseException) -> str:
    """A failed read as the kubelet words it (``configmap "x" not found``), or the error's text."""
    if isinstance(err, NotFound):
        return f'configmap "{err.name}" not found' if err.name else str(err)
    return str(err) or type(err).__name__


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader of the mounted directory never sees half a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
