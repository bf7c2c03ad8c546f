"""The gateway's HTTP and WebSocket API (tornado), as Jupyter Enterprise Gateway serves it.

:func:`gateway.http.routes.make_application` builds the tornado application
from an :class:`~gateway.http.context.HttpContext` (the kernel service, the
kernelspecs, the HTTP settings); ``gateway.app`` calls it.  One module per
concern: ``api`` (version), ``kernelspecs``, ``kernels``, ``sessions``,
``health`` (probes), ``auth`` (token), ``errors`` (JSON error bodies and the
handler base), ``websocket`` + ``bridge`` (with its states in ``bridgestate``
and its sockets to a pod in ``podlink``) + ``resume`` (a client's session
kept across a dropped websocket) + ``wsprotocol`` (kernel channels).
"""
