"""Cluster calls made during a launch: bounded in time, their errors turned into launch errors.

Used by the provisioner modules (``pods``, ``placement``, ``cleanup``).  A call gets what
is left of the launch's deadline; an API error becomes the
:class:`~gateway.provisioner.errors.LaunchError` a user can act on, naming
what the gateway was doing.  :func:`delete_quietly` is for clean-up: it
tolerates what is already gone and retries a briefly unavailable API.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable
from typing import TypeVar

from gateway.cluster.interface import (
    AlreadyExists,
    Cluster,
    ClusterError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServerError,
    TooManyRequests,
)

from .errors import (
    ClusterUnavailable,
    InvalidLaunch,
    LaunchConflict,
    LaunchError,
    LaunchForbidden,
    LaunchTimeout,
    MissingServiceAccount,
)

log = logging.getLogger("gateway.provisioner")

T = TypeVar("T")

CLEANUP_CALL_TIMEOUT = 10.0
CLEANUP_ATTEMPTS = 3
CLEANUP_RETRY_SECONDS = 0.5

_MISSING_ACCOUNT = re.compile(r'error looking up service account ([^/\s]+)/([^:\s]+): serviceaccount "[^"]*" not found')
"""The ServiceAccount admission plugin's refusal of a pod whose account does not exist: a 403 Forbidden
(kubernetes plugin/pkg/admission/serviceaccount/admission.go, ``Admit``: ``admission.NewForbidden(a,
fmt.Errorf("error looking up service account %s/%s: %w", ...))`` around the lookup's NotFound)."""


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (a ``loop.time()`` value); never negative."""
    return max(0.0, deadline - asyncio.get_running_loop().time())


def launch_error(exc: ClusterError, what: str) -> LaunchError:
    """The launch error for an API error met while ``what`` (``creating namespace x``).

    A pod refused because its service account does not exist is the request's mistake: 400.
    """
    detail = f"{what}: {exc.message}"
    if isinstance(exc, Forbidden):
        missing = _MISSING_ACCOUNT.search(exc.message)
        if missing is not None:  # the request named an account the namespace does not have: the client's to fix
            namespace, account = missing.groups()
            return MissingServiceAccount(f"service account {account} does not exist in namespace {namespace} "
                                         f"(KERNEL_SERVICE_ACCOUNT_NAME): {what} was refused",
                                         namespace=namespace, account=account)
        return LaunchForbidden(detail)
    if isinstance(exc, Invalid):
        return InvalidLaunch(detail)
    if isinstance(exc, Conflict):
        return LaunchConflict(detail)
    if isinstance(exc, (ServerError, TooManyRequests)):
        return ClusterUnavailable(detail)
    return LaunchError(detail)


async def api(call: Awaitable[T], *, what: str, deadline: float) -> T:
    """Await one cluster call within the launch's deadline, mapping its errors.

    ``NotFound`` and ``AlreadyExists`` are re-raised as they are (callers
    decide what they mean); other API errors become launch errors; running
    out of time is a :class:`LaunchTimeout`.
    """
    try:
        async with asyncio.timeout(max(remaining(deadline), 0.001)):
            return await call
    except TimeoutError:
        raise LaunchTimeout(f"the Kubernetes API did not answer in time while {what}") from None
    except (NotFound, AlreadyExists):
        raise
    except ClusterError as exc:
        raise launch_error(exc, what) from exc


async def delete_quietly(
    cluster: Cluster, resource: str, name: str, *, namespace: str | None = None, grace_period_seconds: int | None = None
) -> bool:
    """Delete one object for clean-up; ``True`` once it is deleted or already gone.

    Retries an unavailable API a few times; never raises a cluster error (it is
    logged), so one failed deletion does not stop the rest of a clean-up.
    """
    where = f"{resource} {namespace + '/' if namespace else ''}{name}"
    for attempt in range(1, CLEANUP_ATTEMPTS + 1):
        try:
            await asyncio.wait_for(
                cluster.delete(resource, name, namespace=namespace, grace_period_seconds=grace_period_seconds),
                CLEANUP_CALL_TIMEOUT,
            )
            return True
        except NotFound:
            return True
        except Conflict:
            return True  # a namespace already terminating
        except (ServerError, TooManyRequests, asyncio.TimeoutError) as exc:
            log.warning("could not delete %s (attempt %d): %s", where, attempt, exc or exc.__class__.__name__)
        except ClusterError as exc:
            log.error("could not delete %s: %s", where, exc)
            return False
        if attempt < CLEANUP_ATTEMPTS:
            await asyncio.sleep(CLEANUP_RETRY_SECONDS * attempt)  # back-off before retrying the API, not a state wait
    return False
