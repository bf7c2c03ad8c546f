"""The Forbidden messages of the simulated cluster, word for word as the real API server writes them."""

from __future__ import annotations

import pytest

from fakes.auth.identity import UserInfo, service_account_user
from fakes.auth.rbac import Request, StaticRuleSource, authorize, bootstrap_objects, forbidden_message, server_view
from tests.rbacobjects import ALICE, RBAC, binding, user


@pytest.mark.parametrize(("who", "request_", "message"), [
    (service_account_user("ns1", "default"), Request("list", "pods", namespace="ns1"),
     'pods is forbidden: User "system:serviceaccount:ns1:default" cannot list resource "pods" in API group "" '
     'in the namespace "ns1"'),
    (ALICE, Request("get", "pods", namespace="ns1", name="p1", subresource="log"),
     'pods "p1" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace "ns1"'),
    (UserInfo("u"), Request("create", "namespaces", name="kernels-u"),
     'namespaces is forbidden: User "u" cannot create resource "namespaces" in API group "" at the cluster scope'),
    (UserInfo("u"), Request("get", path="/metrics"), 'forbidden: User "u" cannot get path "/metrics"'),
    (UserInfo("u", ()), Request("get", path="/version"), 'forbidden: User "u" cannot get path "/version"'),
    (UserInfo("u"), Request("create", "rolebindings", RBAC, "ns1"),
     'rolebindings.rbac.authorization.k8s.io is forbidden: User "u" cannot create resource "rolebindings" '
     'in API group "rbac.authorization.k8s.io" in the namespace "ns1"'),
    (UserInfo("u"), Request("update", "leases", "coordination.k8s.io", "kube-node-lease", "n1"),
     'leases.coordination.k8s.io "n1" is forbidden: User "u" cannot update resource "leases" '
     'in API group "coordination.k8s.io" in the namespace "kube-node-lease"'),
    (UserInfo("u"), Request("get", "namespaces", name="ns2"),
     'namespaces "ns2" is forbidden: User "u" cannot get resource "namespaces" in API group "" '
     'in the namespace "ns2"'),
    (UserInfo("u"), Request("list", "pods"),
     'pods is forbidden: User "u" cannot list resource "pods" in API group "" at the cluster scope'),
    (UserInfo('we"ird<u>'), Request("get", "pods", namespace="n", name='p"1'),
     'pods "p\\"1" is forbidden: User "we\\"ird&lt;u&gt;" cannot get resource "pods" in API group "" '
     'in the namespace "n"'),
])
def test_forbidden_messages_read_like_the_real_server(who, request_, message):
    request_ = server_view(request_)
    assert not authorize(who, request_, StaticRuleSource(bootstrap_objects())).allowed
    assert forbidden_message(who, request_) == message


def test_forbidden_message_carries_the_denial_reason():
    source = StaticRuleSource([binding("gone", "ClusterRole", "deleted-role", [user("alice")])])
    request = Request("list", "pods", namespace="ns1")
    decision = authorize(ALICE, request, source)
    assert forbidden_message(ALICE, request, decision.reason) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "ns1": '
        'RBAC: clusterrole.rbac.authorization.k8s.io "deleted-role" not found')
