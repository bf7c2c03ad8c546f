"""Code that runs inside a kernel pod.

``python -m gateway.launcher`` picks free ports, sends the connection info
(encrypted to the gateway's public key) to the gateway's response address,
and runs an IPython kernel on those ports in its own process, serving the
gateway's signal and shutdown requests on a comm port until the kernel
stops: a kernel pod is one process.  Another language's kernel
(``--kernel-cmd``) runs as the launcher's child.

This package must stay importable in a small kernel image: the standard
library, ``jupyter_client``/``ipykernel``, and ``cryptography`` for the
legacy (RSA) payload only.  The gateway imports
:mod:`gateway.launcher.protocol` for the shared wire formats.
"""
