"""The node agent's kubelet API over HTTPS, as a real API server calls it for ``kubectl logs``.

Most tests run it beside an in-memory cluster: a CA of ``e2e.kube.pki`` signs its serving
certificate and the callers' client certificates, and its SubjectAccessReviews go to the store.
With ``--cluster=kube`` the last one runs on the real control plane (``e2e.kube``), whose API
server proxies ``kubectl logs [-f]``, ``exec`` and ``port-forward``, and the official client's
websocket exec and port-forward, to it (the kubectl tips there enter, forward and follow too).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.kube.fixture import kube_cluster  # noqa: F401 - the session's real control plane
from e2e.kube.pki import APISERVER_KUBELET_CLIENT, Identity, Pki, write_pki
from fakes.auth.identity import node_user
from fakes.memory import MemoryCluster
from fakes.node.kubelet import NodeAgent
from fakes.node.kubeletapi import KubeletApi, ServingCertificate
from fakes.state.store import Store
from gateway.cluster.interface import Cluster
from tests.deployedharness import places
from tests.kubectlclient import KUBECTL_TIMEOUT, Kubectl
from tests.kubectlstreams import forwarding, http_request
from tests.kubeletharness import NS, admin_fixture, agent_fixture, pod, store_fixture  # noqa: F401 (fixtures)
from tests.podwait import container_running, container_terminated, wait_for_pod

WAIT_SECONDS = 10.0
STRANGER = Identity("someone")
"""A client certificate of the cluster CA whose user RBAC grants nothing on nodes/proxy."""


@dataclass
class Api:
    pki: Pki
    port: int
    server: KubeletApi

    def get(self, path: str, who: Identity | None = APISERVER_KUBELET_CLIENT) -> tuple[int, str]:
        """GET ``path`` as ``who`` (``None``: no client certificate); status and body (a worker thread's call)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if who is not None:
            context.load_cert_chain(self.pki.client_cert(who), self.pki.client_key(who))
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{self.port}{path}", context=context, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@pytest.fixture
async def api(store: Store, agent: NodeAgent, tmp_path: Path) -> AsyncIterator[Api]:
    (tmp_path / "pki").mkdir()
    pki = write_pki(tmp_path / "pki", [APISERVER_KUBELET_CLIENT, STRANGER], kubelets=("node-1",))
    server = KubeletApi(MemoryCluster(store, node_user("node-1")), "node-1", agent.streaming, agent.worker,
                        ServingCertificate(pki.kubelet_cert("node-1"), pki.kubelet_key("node-1"), pki.ca_cert))
    port = await server.start()
    yield Api(pki, port, server)
    await server.stop()


async def test_container_logs_answer_the_api_servers_certificate_with_the_log(admin: Cluster, api: Api):
    await admin.create("pods", pod("talk", ["sh", "-c", "echo one; echo two; echo three"]), namespace=NS)
    await wait_for_pod(admin, NS, "talk", container_terminated(), WAIT_SECONDS)
    assert await asyncio.to_thread(api.get, f"/containerLogs/{NS}/talk/main") == (200, "one\ntwo\nthree\n")
    assert await asyncio.to_thread(api.get, f"/containerLogs/{NS}/talk/main?tailLines=1&stream=All") == (200, "three\n")
    assert await asyncio.to_thread(api.get, f"/containerLogs/{NS}/talk/main?limitBytes=5") == (200, "one\nt")
    status, body = await asyncio.to_thread(api.get, f"/containerLogs/{NS}/talk/main?timestamps=true&tailLines=1")
    stamp, _, line = body.partition(" ")
    assert status == 200 and line == "three\n" and stamp.endswith("Z") and len(stamp) == len("2026-01-02T03:04:05.123456789Z")


async def test_container_logs_refuse_as_the_kubelet_does(admin: Cluster, api: Api):
    await admin.create("pods", pod("quiet", ["sh", "-c", "true"]), namespace=NS)
    await wait_for_pod(admin, NS, "quiet", container_terminated(), WAIT_SECONDS)
    path = f"/containerLogs/{NS}/quiet/main"
    assert await asyncio.to_thread(api.get, path, None) == (401, "Unauthorized")
    assert await asyncio.to_thread(api.get, path, STRANGER) == (
        403, "Forbidden (user=someone, verb=get, resource=nodes, subresource(s)=[proxy])\n")
    assert await asyncio.to_thread(api.get, path + "?tailLines=-1") == (422, '{"message": "Invalid request."}')
    assert await asyncio.to_thread(api.get, path + "?previous=true") == (
        400, 'previous terminated container "main" in pod "quiet" not found')
    assert await asyncio.to_thread(api.get, f"/containerLogs/{NS}/quiet/other") == (
        404, 'container "other" not found in pod "quiet"')
    assert await asyncio.to_thread(api.get, f"/containerLogs/{NS}/absent/main") == (404, 'pod "absent" does not exist')
    assert await asyncio.to_thread(api.get, "/healthz", None) == (200, "ok")


async def test_a_followed_log_ends_when_the_caller_hangs_up(admin: Cluster, api: Api):
    await admin.create("pods", pod("ticks", ["sh", "-c", "echo start; exec sleep 600"]), namespace=NS)
    await wait_for_pod(admin, NS, "ticks", container_running(), WAIT_SECONDS)
    context = ssl.create_default_context(cafile=str(api.pki.ca_cert))
    context.load_cert_chain(api.pki.client_cert(APISERVER_KUBELET_CLIENT), api.pki.client_key(APISERVER_KUBELET_CLIENT))
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port, ssl=context)
    writer.write(f"GET /containerLogs/{NS}/ticks/main?follow=true HTTP/1.1\r\nHost: node-1\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"start\n"), WAIT_SECONDS)
    assert head.startswith(b"HTTP/1.1 200 ")
    [relay] = list(api.server.streams)  # the container runs on: only the caller can end it
    writer.close()
    await asyncio.wait_for(asyncio.gather(relay, return_exceptions=True), WAIT_SECONDS)
    assert not list(api.server.streams)


# ---------------------------------------------------------------------------- behind a real API server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "place" in metafunc.fixturenames:
        skip = () if "kube" in places(metafunc.config) else (pytest.mark.skip(reason="runs with --cluster=kube"),)
        metafunc.parametrize("place", [pytest.param("kube", marks=skip)])


TALKER = """
import http.server, threading, time
print("hello from the pod", flush=True)
server = http.server.HTTPServer(("0.0.0.0", 8080), http.server.SimpleHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
for tick in range(600):
    print("tick", tick, flush=True)
    time.sleep(1)
"""


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_and_the_python_client_reach_pods_through_a_real_api_server(place, request, tmp_path):
    plane = request.getfixturevalue("kube_cluster")
    kubectl = Kubectl(plane.admin_kubeconfig, tmp_path / "cache")
    namespace = f"kubelet-api-{uuid.uuid4().hex[:8]}"
    await kubectl("create", "namespace", namespace)
    try:
        talker = pod("talk", ["python3", "-u", "-c", TALKER], image="python:3.11")
        await kubectl("create", "-n", namespace, "-f", "-", stdin=json.dumps({**talker, "metadata": {"name": "talk"}}))
        await kubectl("wait", "--for=condition=Ready", "pod/talk", "-n", namespace, "--timeout=60s")

        _, out, _ = await kubectl("logs", "talk", "-n", namespace)
        assert out.startswith("hello from the pod\n")
        follower = await asyncio.create_subprocess_exec(
            "kubectl", "logs", "-f", "--tail=1", "talk", "-n", namespace, env=kubectl.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        try:
            assert follower.stdout is not None
            first = await asyncio.wait_for(follower.stdout.readline(), KUBECTL_TIMEOUT)
            later = await asyncio.wait_for(follower.stdout.readline(), KUBECTL_TIMEOUT)  # written after the request
            assert first.startswith(b"tick ") and later.startswith(b"tick ") and first != later
        finally:
            follower.kill()
            await follower.wait()

        code, out, err = await kubectl("exec", "talk", "-n", namespace, "--", "sh", "-c", "echo in $(hostname); exit 3",
                                       check=False)
        assert (code, out) == (3, "in talk\n"), err
        # A runtime's failure to start the command comes on the error stream, after the upgrade (the API
        # server's stream translator, kubectl 1.30 on, says "Internal error occurred: " once more).
        code, _, err = await kubectl("exec", "talk", "-n", namespace, "--", "nosuchprog", check=False)
        assert code == 1 and "unable to upgrade" not in err and err.startswith("error: Internal error occurred: ")
        assert err.endswith('Internal error occurred: error executing command in container: OCI runtime exec failed: '
                            'exec failed: unable to start container process: exec: "nosuchprog": executable file not '
                            'found in $PATH: unknown\n'), err
        async with forwarding(kubectl, {}, "pod/talk", "-n", namespace, ":8080") as port:
            status, _ = await asyncio.to_thread(http_request, port, "/")
            assert status == 200

        # The Python client speaks v4 websocket channels, which the API server passes through to the kubelet.
        said, answer = await asyncio.to_thread(python_client_streams, plane.admin_kubeconfig, namespace)
        assert said == "err\nvia python\n" or said == "via python\nerr\n"
        assert answer.startswith(b"HTTP/1.0 200 ")
    finally:
        await kubectl("delete", "namespace", namespace, "--wait=false")


def python_client_streams(kubeconfig: Path, namespace: str) -> tuple[str, bytes]:
    """Exec and port-forward of pod ``talk`` with the official client (a worker thread's calls)."""
    from kubernetes import client, config
    from kubernetes.stream import portforward, stream

    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    said = stream(api.connect_get_namespaced_pod_exec, "talk", namespace, command=["sh", "-c", "echo via python; echo err >&2"],
                  stderr=True, stdin=False, stdout=True, tty=False)
    forwarded = portforward(api.connect_get_namespaced_pod_portforward, "talk", namespace, ports="8080")
    try:
        sock = forwarded.socket(8080)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    finally:
        forwarded.close()
    return said, answer
