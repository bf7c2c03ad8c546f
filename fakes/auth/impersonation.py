"""User impersonation (``Impersonate-User``, ``Impersonate-Group`` headers), as ``kubectl --as`` uses it.

Called by :mod:`fakes.apiserver.server` after authentication.  Follows the real
filter (``k8s.io/apiserver/pkg/endpoints/filters/impersonation.go``): the
acting user needs the ``impersonate`` verb on ``users`` (or ``serviceaccounts``
in the account's namespace, for a service-account user name) and on ``groups``
for each requested group; an impersonated service account with no groups asked
for gets its service-account groups; everyone but ``system:anonymous`` gets
``system:authenticated``.
"""

from __future__ import annotations

from tornado.httputil import HTTPHeaders

from fakes.auth import rbac
from fakes.auth.identity import AUTHENTICATED, SERVICE_ACCOUNTS, UserInfo
from gateway.cluster.interface import Forbidden, ServerError

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "Impersonate-Extra-"


def _check(acting: UserInfo, request: rbac.Request, source: rbac.RuleSource) -> None:
    decision = rbac.authorize(acting, request, source)
    if not decision.allowed:
        raise Forbidden(
            rbac.forbidden_message(acting, request, decision.reason),
            kind=request.resource, name=request.name, group=request.api_group,
        )


def impersonate(acting: UserInfo, headers: HTTPHeaders, source: rbac.RuleSource) -> UserInfo:
    """The user the request acts as: ``acting`` itself without impersonation headers.

    Raises :class:`Forbidden` when ``acting`` may not impersonate whom it asks for.
    """
    user_name = headers.get(USER_HEADER)
    groups = headers.get_list(GROUP_HEADER)
    uid = headers.get(UID_HEADER)
    has_extra = any(name.lower().startswith(EXTRA_PREFIX.lower()) for name, _ in headers.get_all())
    if not user_name:
        if groups or uid or has_extra:
            # impersonation.go answers this with an internal error, not a 400
            what = [f"{GROUP_HEADER}={g}" for g in groups] + ([f"{UID_HEADER}={uid}"] if uid else [])
            raise ServerError(f"requested {what} without impersonating a user")
        return acting

    sa_namespace = sa_name = ""
    parts = user_name.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        sa_namespace, sa_name = parts[2], parts[3]
        _check(acting, rbac.Request("impersonate", "serviceaccounts", "", sa_namespace, sa_name), source)
        if not groups:
            groups = [SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{sa_namespace}"]
    else:
        _check(acting, rbac.Request("impersonate", "users", "", "", user_name), source)
    for group in headers.get_list(GROUP_HEADER):
        _check(acting, rbac.Request("impersonate", "groups", "", "", group), source)
    if uid:
        _check(acting, rbac.Request("impersonate", "uids", "authentication.k8s.io", "", uid), source)

    if user_name != "system:anonymous" and AUTHENTICATED not in groups:
        groups = [*groups, AUTHENTICATED]
    return UserInfo(user_name, tuple(groups), uid or "")
