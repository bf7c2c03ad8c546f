"""``kubectl exec``, ``attach``, ``port-forward`` and ``logs -f`` on the simulated cluster, with the real kubectl.

The API server streams them to the pod's node as a real one does; kubectl picks the protocol:
websockets from 1.30 (exec, attach) and 1.31 (port-forward, SPDY tunnelled in a websocket), SPDY
before that and whenever it is told not to use websockets (``KUBECTL_REMOTE_COMMAND_WEBSOCKETS``,
``KUBECTL_PORT_FORWARD_WEBSOCKETS`` set to ``false``), so both transports run with one kubectl.
The official Python client's port-forward speaks the websocket channel protocol (``v4.channel.k8s.io``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fakes.serve import SimulatedCluster
from tests.kubectlclient import KUBECTL_TIMEOUT, Kubectl
from tests.kubectlstreams import forwarding, http_request, in_terminal

pytestmark = [
    pytest.mark.kubectl,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

WEBSOCKETS = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true"}
SPDY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
TRANSPORTS = pytest.mark.parametrize("transport", [WEBSOCKETS, SPDY], ids=["websocket", "spdy"])
WEB_PORT = 8080
GREETING = "hello from the pod"


def pod(name: str, command: str, *, image: str = "busybox", restart: str = "Always", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"restartPolicy": restart, "containers": [{
            "name": "main", "image": image, "command": ["sh", "-c", command], "workingDir": "/tmp",
            "env": [{"name": "GREETING", "value": GREETING}],
        }]},
    }


@pytest.fixture
async def cluster(tmp_path) -> AsyncIterator[SimulatedCluster]:
    async with SimulatedCluster(state_dir=tmp_path / "state") as c:
        yield c


@pytest.fixture
def kubectl(cluster, tmp_path) -> Kubectl:
    return Kubectl(cluster.kubeconfig_path, tmp_path / "cache")


async def run_pod(kubectl: Kubectl, manifest: dict[str, Any]) -> str:
    await kubectl("create", "-f", "-", stdin=json.dumps(manifest))
    name = manifest["metadata"]["name"]
    await kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s")
    return name


@pytest.fixture
async def shell(kubectl) -> str:
    """A running pod whose container waits, with ``GREETING`` in its environment and ``/tmp`` as working dir."""
    return await run_pod(kubectl, pod("shell", "while true; do sleep 1; done"))


@pytest.fixture
async def web(kubectl) -> str:
    """A pod serving HTTP on :data:`WEB_PORT`, behind the Service ``web`` (port 80)."""
    name = await run_pod(kubectl, pod("web", f"exec python3 -m http.server {WEB_PORT}", image="python", app="web"))
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": WEB_PORT}]}}
    await kubectl("create", "-f", "-", stdin=json.dumps(service))
    return name


async def kubectl_with(kubectl: Kubectl, transport: dict[str, str], *args: str,
                       stdin: str | None = None) -> tuple[int, str, str]:
    """``kubectl args`` with the transport's environment, not checked."""
    proc = await asyncio.create_subprocess_exec(
        "kubectl", *args, env={**kubectl.env, **transport}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin is not None else None), KUBECTL_TIMEOUT)
    return proc.returncode or 0, out.decode(), err.decode()


# ------------------------------------------------------------------------------------------ exec


@TRANSPORTS
async def test_exec_runs_in_the_pods_environment_and_exits_with_the_commands_code(kubectl, shell, transport):
    code, out, err = await kubectl_with(kubectl, transport, "exec", shell, "--",
                                        "sh", "-c", 'echo "$GREETING"; pwd; echo oops >&2; exit 3')
    assert code == 3, err
    assert out.splitlines() == [GREETING, "/tmp"]
    assert "oops" in err and "command terminated with exit code 3" in err


@TRANSPORTS
async def test_exec_passes_piped_stdin_and_its_end(kubectl, shell, transport):
    code, out, err = await kubectl_with(kubectl, transport, "exec", "-i", shell, "--", "sh", "-c", "wc -l; cat",
                                        stdin="one\ntwo\n")
    assert (code, out.split()) == (0, ["2"]), err
    code, out, _ = await kubectl_with(kubectl, transport, "exec", "-i", shell, "--", "cat", stdin="piped\n")
    assert (code, out) == (0, "piped\n")


@TRANSPORTS
async def test_a_client_that_leaves_ends_the_command_it_started(kubectl, shell, transport):
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "exec", shell, "--", "sh", "-c", "echo $$; exec sleep 1000", env={**kubectl.env, **transport},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    pid = int(await asyncio.wait_for(proc.stdout.readline(), KUBECTL_TIMEOUT))
    pidfd = os.pidfd_open(pid)  # readable once the process has exited
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        proc.kill()
        await proc.communicate()
        await asyncio.wait_for(exited, KUBECTL_TIMEOUT)
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def test_exec_of_a_missing_program_is_the_runtimes_error(kubectl, shell):
    code, _, err = await kubectl("exec", shell, "--", "no-such-program", check=False)
    assert code == 1
    assert 'exec: "no-such-program": executable file not found in $PATH' in err


@TRANSPORTS
async def test_exec_with_a_terminal_gets_one_of_the_clients_size(kubectl, shell, transport):
    typed = b"tty; stty size; echo \"$GREETING\"; exit 7\n"
    code, output = await asyncio.to_thread(
        in_terminal, {**kubectl.env, **transport, "TERM": "dumb"}, ["exec", "-it", shell, "--", "sh"], typed, 33, 101)
    assert code == 7, output
    assert re.search(r"(^|# )/dev/pts/\d+\r?$", output, re.M), output  # after the shell's prompt
    assert re.search(r"^33 101\r?$", output, re.M), output
    assert re.search(rf"^{GREETING}\r?$", output, re.M), output


# ------------------------------------------------------------------------------------------ RBAC


async def account_token(kubectl: Kubectl, name: str, rules: list[dict[str, Any]]) -> str:
    """A service account of ``default`` bound to a Role with ``rules``; its token."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name}, "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    await kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                         "items": [account, role, binding]}))
    return await kubectl.token(name, "default")


async def test_exec_needs_create_on_pods_exec(kubectl, shell):
    read_pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    viewer = await account_token(kubectl, "viewer", [read_pods])
    code, _, err = await kubectl(f"--token={viewer}", "exec", shell, "--", "true", check=False)
    assert code == 1
    assert "Forbidden" in err
    assert 'User "system:serviceaccount:default:viewer" cannot create resource "pods/exec"' in err

    operator = await account_token(kubectl, "operator", [
        read_pods, {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]}])
    code, out, err = await kubectl(f"--token={operator}", "exec", shell, "--", "echo", "allowed", check=False)
    assert (code, out) == (0, "allowed\n"), err
    code, _, err = await kubectl(f"--token={operator}", "port-forward", "pod/" + shell, ":80", check=False)
    assert code == 1 and 'cannot create resource "pods/portforward"' in err


# ------------------------------------------------------------------------------------------ port-forward


@TRANSPORTS
async def test_port_forward_to_a_pod_carries_http(kubectl, web, transport):
    async with forwarding(kubectl, transport, f"pod/{web}", f":{WEB_PORT}") as port:
        for _ in range(3):  # a connection per request, each a new stream pair
            status, body = await asyncio.to_thread(http_request, port)
            assert status == 200 and b"Directory listing" in body


@TRANSPORTS
async def test_port_forward_to_a_service_reaches_a_ready_pod_behind_it(kubectl, web, transport):
    async with forwarding(kubectl, transport, "svc/web", ":80") as port:
        status, body = await asyncio.to_thread(http_request, port)
        assert status == 200 and b"Directory listing" in body


@TRANSPORTS
async def test_port_forward_to_a_closed_port_reports_the_nodes_error(kubectl, web, transport):
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "port-forward", "--address=127.0.0.1", f"pod/{web}", ":9", env={**kubectl.env, **transport},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), KUBECTL_TIMEOUT)).decode()
        found = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 9", line)
        assert found, line
        with pytest.raises(OSError):
            await asyncio.to_thread(http_request, int(found.group(1)))
        err = b""
        while b"error forwarding port 9" not in err:
            chunk = await asyncio.wait_for(proc.stderr.read(4096), KUBECTL_TIMEOUT)
            assert chunk, err
            err += chunk
        assert b"connect: connection refused" in err
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.communicate()


async def test_port_forward_over_websocket_channels(cluster, web):
    """The Python client's port-forward: ``v4.channel.k8s.io``, a data and an error channel per port."""
    from kubernetes import client, config
    from kubernetes.stream import portforward

    def fetch() -> bytes:
        api = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig_path)))
        forward = portforward(api.connect_get_namespaced_pod_portforward, web, "default", ports=str(WEB_PORT))
        sock = forward.socket(WEB_PORT)
        sock.settimeout(KUBECTL_TIMEOUT)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
        sock.close()
        forward.close()
        assert forward.error(WEB_PORT) is None
        return response

    response = await asyncio.to_thread(fetch)
    assert response.startswith(b"HTTP/1.0 200") and b"Directory listing" in response


# ------------------------------------------------------------------------------------------ attach and logs


async def test_attach_streams_what_the_container_prints_from_then_on(kubectl):
    name = await run_pod(kubectl, pod("ticker", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"))
    proc = await asyncio.create_subprocess_exec("kubectl", "attach", name, env=kubectl.env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), KUBECTL_TIMEOUT)).decode() for _ in range(3)]
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + 3)), lines
    finally:
        proc.terminate()
        await proc.communicate()


async def test_logs_follow_keeps_following_until_the_container_ends(kubectl):
    name = await run_pod(kubectl, pod(
        "writer", 'echo first; while [ ! -e "$TMPDIR/go" ]; do sleep 0.1; done; echo second', restart="Never"))
    proc = await asyncio.create_subprocess_exec("kubectl", "logs", "-f", f"po/{name}", env=kubectl.env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), KUBECTL_TIMEOUT)
        assert first == b"first\n"
        await kubectl("exec", name, "--", "sh", "-c", 'touch "$TMPDIR/go"')
        rest, err = await asyncio.wait_for(proc.communicate(), KUBECTL_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert (proc.returncode, rest) == (0, b"second\n"), err
