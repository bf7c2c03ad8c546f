"""The ``kube`` target: a real Kubernetes control plane built from Kubernetes' own Go modules.

``e2e/controlplane/`` is the Go module (one binary: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler); :mod:`e2e.kube.build` builds and caches
it, :mod:`e2e.kube.launcher` runs it with this repository's node agent as the
kubelet (:mod:`e2e.kube.node`, which also serves the kubelet API the API server
proxies logs, exec, attach and port-forward to), and :mod:`e2e.kube.fixture` gives
it to tests; :mod:`e2e.kube.report` (``make test-kube``) counts the tests that ran
on it.  ``python -m e2e.kube`` runs it in the foreground.
"""
