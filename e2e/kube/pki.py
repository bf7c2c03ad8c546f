"""Certificates, keys and kubeconfigs of the real control plane.

:class:`~e2e.kube.launcher.ControlPlane` calls :func:`write_pki` once, before it
starts any process: a fresh CA signs the API server's serving certificate and a
client certificate for each identity that talks to it (the admin in
``system:masters``, the controller manager, the scheduler, the node agent as
``system:node:<name>`` in ``system:nodes``, and the API server itself when it
dials a kubelet or fronts an aggregated API), and the kubelet API's serving certificate of each node;
a separate key pair signs service-account tokens.  Keys are
ECDSA P-256, which every component accepts and which takes no noticeable time
to generate.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)
SERVICE_IP = "10.0.0.1"
"""The ``kubernetes`` Service's cluster IP: the first address of the service range the launcher gives the API server."""
SERVING_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")


@dataclass(frozen=True)
class Identity:
    """Who a client certificate names: user ``name`` in ``groups``."""

    name: str
    groups: tuple[str, ...] = ()


ADMIN = Identity("kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("system:kube-controller-manager")
SCHEDULER = Identity("system:kube-scheduler")
APISERVER_KUBELET_CLIENT = Identity("kube-apiserver-kubelet-client", ("system:masters",))
FRONT_PROXY = Identity("front-proxy-client")
"""The API server as it proxies to aggregated API servers (the request-header identity they trust)."""


def node_identity(node_name: str) -> Identity:
    """The identity the Node authorizer recognizes as node ``node_name``."""
    return Identity(f"system:node:{node_name}", ("system:nodes",))


@dataclass(frozen=True)
class Pki:
    """Paths of what :func:`write_pki` wrote, all under one directory."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.directory / "sa.pub"

    def kubelet_cert(self, node_name: str) -> Path:
        """The serving certificate of node ``node_name``'s kubelet API."""
        return self.directory / f"kubelet-{node_name}.crt"

    def kubelet_key(self, node_name: str) -> Path:
        return self.directory / f"kubelet-{node_name}.key"

    def client_cert(self, who: Identity) -> Path:
        return self.directory / f"{_file_name(who)}.crt"

    def client_key(self, who: Identity) -> Path:
        return self.directory / f"{_file_name(who)}.key"


def _file_name(who: Identity) -> str:
    return who.name.replace(":", "-")


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    path.write_bytes(data)
    if secret:
        path.chmod(0o600)


class _Authority:
    """The CA: signs serving and client certificates."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kernelgate-controlplane-ca")])
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(minutes=5))
            .not_valid_after(self.now + VALIDITY)
        )

    def issue(self, subject: x509.Name, usage: x509.ObjectIdentifier,
              names: list[x509.GeneralName] | None = None) -> tuple[bytes, bytes]:
        """A new key and a certificate for it: PEM bytes of (certificate, key)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def _subject(who: Identity) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in who.groups]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, who.name)])


def write_pki(directory: Path, identities: list[Identity], kubelets: tuple[str, ...] = ()) -> Pki:
    """Write a CA, the API server's serving pair, the service-account key pair, a client pair per identity,
    and a serving pair for the kubelet API of each node in ``kubelets`` (for its name and 127.0.0.1, the
    InternalIP the API server dials).

    Called by the launcher before the first process starts; ``directory`` must exist.
    """
    pki = Pki(directory)
    ca = _Authority()
    _write(pki.ca_cert, ca.cert.public_bytes(serialization.Encoding.PEM))
    _write(pki.ca_key, _pem_key(ca.key), secret=True)
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVING_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", SERVICE_IP)]
    cert, key = ca.issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
                         ExtendedKeyUsageOID.SERVER_AUTH, names)
    _write(pki.serving_cert, cert)
    _write(pki.serving_key, key, secret=True)
    for node in kubelets:
        cert, key = ca.issue(_subject(node_identity(node)), ExtendedKeyUsageOID.SERVER_AUTH,
                             [x509.DNSName(node), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        _write(pki.kubelet_cert(node), cert)
        _write(pki.kubelet_key(node), key, secret=True)
    for who in identities:
        cert, key = ca.issue(_subject(who), ExtendedKeyUsageOID.CLIENT_AUTH)
        _write(pki.client_cert(who), cert)
        _write(pki.client_key(who), key, secret=True)
    signing = ec.generate_private_key(ec.SECP256R1())
    _write(pki.service_account_key, _pem_key(signing), secret=True)
    _write(pki.service_account_pub, signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki


def _data(file: Path) -> str:
    return base64.b64encode(file.read_bytes()).decode()


def _write_config(path: Path, server: str, pki: Pki, user: str, credentials: dict[str, str]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kernelgate", "cluster": {"server": server, "certificate-authority-data": _data(pki.ca_cert)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "kernelgate", "context": {"cluster": "kernelgate", "user": user}}],
        "current-context": "kernelgate",
    }
    _write(path, yaml.safe_dump(config, sort_keys=False).encode(), secret=True)
    return path


def write_kubeconfig(path: Path, server: str, pki: Pki, who: Identity) -> Path:
    """A kubeconfig for ``server`` as ``who`` (its client certificate), the CA embedded."""
    return _write_config(path, server, pki, who.name, {"client-certificate-data": _data(pki.client_cert(who)),
                                                        "client-key-data": _data(pki.client_key(who))})


def write_token_kubeconfig(path: Path, server: str, pki: Pki, user: str, token: str) -> Path:
    """A kubeconfig for ``server`` as the bearer of ``token`` (named ``user`` in the file), the CA embedded."""
    return _write_config(path, server, pki, user, {"token": token})
