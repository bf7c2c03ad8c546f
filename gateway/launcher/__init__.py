"""Code that runs inside a kernel pod.

``python -m gateway.launcher`` picks free ports, starts an IPython kernel on
them, sends the connection info (encrypted to the gateway's public key) to the
gateway's response address, then serves signal and shutdown requests from the
gateway on a comm port until the kernel exits.

This package must stay importable in a small kernel image: the standard
library, ``jupyter_client``/``ipykernel`` and ``cryptography`` only.  The
gateway imports :mod:`gateway.launcher.protocol` for the shared wire formats.
"""
