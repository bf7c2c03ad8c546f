"""Signal and shutdown requests to a kernel's launcher, over its comm port.

The request format is Enterprise Gateway's (``{"signum": n}``,
``{"shutdown": 1}``, one per connection, ended by closing our side), signed
with the kernel's connection key so our launcher can tell the gateway from any
other cluster peer.  Our launcher answers an accepted request; EG's launchers
and our launcher refusing a request both just close, so the result says
whether the request was *confirmed*, not whether it was delivered.
"""

from __future__ import annotations

import asyncio
import json
import time

from gateway.launcher.protocol import COMM_ACK, sign_comm_request

from .connection import ConnectionInfo

DEFAULT_TIMEOUT = 5.0


class CommError(OSError):
    """The launcher's comm port could not be reached or did not answer in time."""


async def send_signal(conn: ConnectionInfo, signum: int, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Ask the launcher to send ``signum`` to the kernel (called to interrupt a kernel).

    Returns ``True`` when the launcher confirmed it.  Raises :class:`CommError`
    when the comm port cannot be reached within ``timeout``.
    """
    return await _request(
        conn, sign_comm_request(kernel_id=conn.kernel_id, key=conn.key, now=time.time(), signum=signum), timeout
    )


async def request_shutdown(conn: ConnectionInfo, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Ask the launcher to stop the kernel and exit (called when shutting a kernel down).

    Returns ``True`` when the launcher confirmed; it then stops the kernel
    (politely, then by force) and exits 0.  Raises :class:`CommError` when the
    comm port cannot be reached within ``timeout``.
    """
    return await _request(
        conn, sign_comm_request(kernel_id=conn.kernel_id, key=conn.key, now=time.time(), shutdown=True), timeout
    )


async def _request(conn: ConnectionInfo, request: dict, timeout: float) -> bool:
    if not conn.comm_port:
        raise CommError(f"kernel {conn.kernel_id} has no comm port")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(conn.ip, conn.comm_port), timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        raise CommError(f"kernel {conn.kernel_id}: comm port {conn.ip}:{conn.comm_port} unreachable") from exc
    try:
        writer.write(json.dumps(request).encode("utf-8"))
        writer.write_eof()
        await asyncio.wait_for(writer.drain(), max(deadline - loop.time(), 0))
        answer = await asyncio.wait_for(_read_answer(reader), max(deadline - loop.time(), 0))
    except ConnectionError:
        return False  # closed on us: an EG launcher, or a refusal
    except asyncio.TimeoutError as exc:
        raise CommError(f"kernel {conn.kernel_id}: no answer from the comm port within {timeout:g}s") from exc
    except OSError as exc:  # e.g. ENOTCONN from write_eof when the launcher's side is already gone
        raise CommError(f"kernel {conn.kernel_id}: comm port {conn.ip}:{conn.comm_port} failed ({exc})") from exc
    except RuntimeError as exc:
        # uvloop's transports refuse a write once the connection is lost (the launcher's pod was
        # deleted as we connected); asyncio's drop it and fail the drain.  Either is a comm failure.
        if not writer.transport.is_closing():
            raise
        raise CommError(f"kernel {conn.kernel_id}: comm port {conn.ip}:{conn.comm_port} closed ({exc})") from exc
    finally:
        writer.close()
    return answer.strip() == COMM_ACK


async def _read_answer(reader: asyncio.StreamReader, limit: int = 256) -> bytes:
    """What the launcher writes before closing, up to ``limit`` bytes (an acknowledgement is short)."""
    answer = b""
    while len(answer) <= limit:
        chunk = await reader.read(limit)
        if not chunk:
            break
        answer += chunk
    return answer
