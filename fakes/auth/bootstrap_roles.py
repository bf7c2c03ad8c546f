"""The ClusterRoles and ClusterRoleBindings a fresh simulated cluster starts with.

Modelled on the real API server's default policy
(``plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go``): the same names,
labels, annotations, aggregation labels and, for the roles our components use,
the same rules.  :func:`fakes.auth.rbac.bootstrap_objects` is what callers use; it
also fills in the rules of the aggregated roles (``admin``, ``edit``, ``view``)
as the real cluster-role aggregation controller does shortly after start-up.

One deliberate difference: a real cluster leaves the ``system:node`` binding
without subjects because kubelets are authorized by the Node authorizer.  The
simulated cluster has no Node authorizer, so the binding names the
``system:nodes`` group, and the role also lets the node agent bind pods to
nodes (the agent doubles as the scheduler).

The controller manager (``fakes.controllers``) is granted as kube-controller-manager
is with ``--use-service-account-credentials``: its own user ``system:kube-controller-manager``
lists and watches everything (its shared informers) and may create the controllers'
service accounts in ``kube-system`` and their tokens; each controller writes as its
service account, bound to its ``system:controller:<name>`` role
(``controller_policy.go``).  kube-proxy (``fakes.node.proxy``) is the user
``system:kube-proxy`` with ``system:node-proxier``.
"""

from __future__ import annotations

from fakes.auth.identity import AUTHENTICATED, NODES, SERVICE_ACCOUNTS, SYSTEM_MASTERS

UNAUTHENTICATED = "system:unauthenticated"
"""The group of anonymous callers (``k8s.io/apiserver/pkg/authentication/user``)."""

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"

BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
BOOTSTRAP_ANNOTATIONS = {"rbac.authorization.kubernetes.io/autoupdate": "true"}

AGGREGATE_TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
AGGREGATE_TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
AGGREGATE_TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"

KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
"""The user kube-controller-manager authenticates as."""
KUBE_PROXY = "system:kube-proxy"
"""The user kube-proxy authenticates as."""
CONTROLLERS_NAMESPACE = "kube-system"
"""Where the controllers' service accounts live."""
CONTROLLER_ROLE_PREFIX = "system:controller:"

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
READ_WRITE = READ + WRITE


def rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> dict:
    """A resource PolicyRule in wire format."""
    out: dict = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        out["resourceNames"] = list(names)
    return out


def url_rule(verbs: list[str], urls: list[str]) -> dict:
    """A non-resource PolicyRule in wire format."""
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


def cluster_role(name: str, rules: list[dict], labels: dict[str, str] | None = None,
                 aggregate_labels: str | None = None) -> dict:
    """A bootstrap ClusterRole; ``aggregate_labels`` makes it aggregate roles carrying that label."""
    role: dict = {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
            "annotations": dict(BOOTSTRAP_ANNOTATIONS),
        },
        "rules": rules,
    }
    if aggregate_labels:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate_labels: "true"}}]}
    return role


def cluster_role_binding(role_name: str, groups: list[str], subjects: list[dict] | None = None) -> dict:
    """A bootstrap ClusterRoleBinding named like its ClusterRole, granting it to ``groups`` (or ``subjects``)."""
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": role_name,
            "labels": dict(BOOTSTRAP_LABELS),
            "annotations": dict(BOOTSTRAP_ANNOTATIONS),
        },
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role_name},
        "subjects": subjects if subjects is not None else [
            {"apiGroup": RBAC_GROUP, "kind": "Group", "name": group} for group in groups
        ],
    }


def _user(name: str) -> dict:
    return {"apiGroup": RBAC_GROUP, "kind": "User", "name": name}


def _events_rule() -> dict:
    """``eventsRule()`` of the bootstrap policy: recording events, core and events.k8s.io."""
    return rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"])


def _node_rules() -> list[dict]:
    """What the node agent needs: the real ``NodeRules()`` for our resources, plus pod binding."""
    return [
        rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ, [""], ["services"]),
        rule(["create", "get", "list", "watch"], [""], ["nodes"]),
        rule(["update", "patch"], [""], ["nodes/status"]),
        rule(["update", "patch"], [""], ["nodes"]),
        rule(["create", "update", "patch"], [""], ["events"]),
        rule(READ, [""], ["pods"]),
        rule(["create", "delete"], [""], ["pods"]),
        rule(["update", "patch"], [""], ["pods/status"]),
        rule(["create"], [""], ["pods/eviction"]),
        # The scheduler's permission (system:kube-scheduler): our node agent also places pods.
        rule(["create"], [""], ["pods/binding", "bindings"]),
        rule(READ, [""], ["secrets", "configmaps"]),
        rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
        rule(["get"], [""], ["endpoints"]),
        rule(["get", "create", "update", "patch", "delete"], ["coordination.k8s.io"], ["leases"]),
        rule(["create"], [""], ["serviceaccounts/token"]),
    ]


def _kube_controller_manager_rules() -> list[dict]:
    """``system:kube-controller-manager``: what the manager itself does (policy.go)."""
    return [
        _events_rule(),
        rule(["create"], ["coordination.k8s.io"], ["leases"]),
        rule(["get", "update"], ["coordination.k8s.io"], ["leases"], ["kube-controller-manager"]),
        rule(["create"], [""], ["secrets", "serviceaccounts"]),
        rule(["delete"], [""], ["secrets"]),
        rule(["get"], [""], ["configmaps", "namespaces", "secrets", "serviceaccounts"]),
        rule(["update"], [""], ["secrets", "serviceaccounts"]),
        rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        # Its shared informers.
        rule(["list", "watch"], ["*"], ["*"]),
        rule(["create"], [""], ["serviceaccounts/token"]),
    ]


def controller_roles() -> dict[str, list[dict]]:
    """The roles of the controllers ``fakes.controllers`` runs, by service account (controller_policy.go)."""
    apps = ["apps", "extensions"]
    return {
        "deployment-controller": [
            rule(["get", "list", "watch", "update"], apps, ["deployments"]),
            rule(["update"], apps, ["deployments/finalizers", "deployments/status"]),
            rule(["get", "list", "watch", "create", "update", "patch", "delete"], apps, ["replicasets"]),
            rule(["get", "list", "watch", "update"], [""], ["pods"]),
            _events_rule(),
        ],
        "replicaset-controller": [
            rule(["get", "list", "watch", "update"], apps, ["replicasets"]),
            rule(["update"], apps, ["replicasets/status"]),
            rule(["update"], apps, ["replicasets/finalizers"]),
            rule(["list", "watch", "patch", "create", "delete"], [""], ["pods"]),
            _events_rule(),
        ],
        "endpoint-controller": [
            rule(["get", "list", "watch"], [""], ["services", "pods"]),
            rule(["get", "list", "create", "update", "delete"], [""], ["endpoints"]),
            rule(["create"], [""], ["endpoints/restricted"]),
            _events_rule(),
        ],
        "endpointslice-controller": [
            rule(["get", "list", "watch"], [""], ["services", "pods", "nodes"]),
            rule(["update"], [""], ["services/finalizers"]),
            rule(["get", "list", "create", "update", "delete"], ["discovery.k8s.io"], ["endpointslices"]),
            _events_rule(),
        ],
    }


def _node_proxier_rules() -> list[dict]:
    """``system:node-proxier``: what kube-proxy reads (policy.go)."""
    return [
        rule(["list", "watch"], [""], ["services", "endpoints"]),
        rule(["get", "list", "watch"], [""], ["nodes"]),
        _events_rule(),
        rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
    ]


def _aggregate_to_admin_rules() -> list[dict]:
    return [
        rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
        rule(READ_WRITE, [RBAC_GROUP], ["roles", "rolebindings"]),
    ]


def _aggregate_to_edit_rules() -> list[dict]:
    return [
        # Read access to the resources that can be used to escalate.
        rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
        rule(["impersonate"], [""], ["serviceaccounts"]),
        rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
        rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                           "services/proxy", "endpoints", "persistentvolumeclaims", "configmaps", "secrets"]),
        rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
                               "deployments/rollback", "replicasets", "replicasets/scale"]),
        rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
        rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
        rule(WRITE, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
    ]


def _aggregate_to_view_rules() -> list[dict]:
    return [
        rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                          "services", "services/status", "endpoints", "persistentvolumeclaims",
                          "persistentvolumeclaims/status", "configmaps"]),
        rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                          "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"]),
        # Read access to namespaces at the namespace scope means reading *this* namespace.
        rule(READ, [""], ["namespaces"]),
        rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                              "daemonsets", "daemonsets/status", "deployments", "deployments/status",
                              "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale"]),
        rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
        rule(READ, ["batch"], ["jobs", "jobs/status", "cronjobs", "cronjobs/status"]),
        rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, ["networking.k8s.io"], ["networkpolicies", "ingresses", "ingresses/status"]),
    ]


def default_cluster_roles() -> list[dict]:
    """The default ClusterRoles; aggregated ones (admin, edit, view) still have empty ``rules``."""
    return [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])]),
        cluster_role("system:discovery", [url_rule(["get"], [
            "/livez", "/readyz", "/healthz", "/version", "/version/",
            "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*",
        ])]),
        cluster_role("system:public-info-viewer", [url_rule(["get"], [
            "/livez", "/readyz", "/healthz", "/version", "/version/",
        ])]),
        cluster_role("system:basic-user", [
            rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        ]),
        cluster_role("admin", [], aggregate_labels=AGGREGATE_TO_ADMIN),
        cluster_role("edit", [], labels={AGGREGATE_TO_ADMIN: "true"}, aggregate_labels=AGGREGATE_TO_EDIT),
        cluster_role("view", [], labels={AGGREGATE_TO_EDIT: "true"}, aggregate_labels=AGGREGATE_TO_VIEW),
        cluster_role("system:aggregate-to-admin", _aggregate_to_admin_rules(), labels={AGGREGATE_TO_ADMIN: "true"}),
        cluster_role("system:aggregate-to-edit", _aggregate_to_edit_rules(), labels={AGGREGATE_TO_EDIT: "true"}),
        cluster_role("system:aggregate-to-view", _aggregate_to_view_rules(), labels={AGGREGATE_TO_VIEW: "true"}),
        cluster_role("system:node", _node_rules()),
        cluster_role("system:auth-delegator", [
            rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
            rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        ]),
        cluster_role("system:service-account-issuer-discovery", [url_rule(["get"], [
            "/.well-known/openid-configuration", "/openid/v1/jwks",
        ])]),
        cluster_role(KUBE_CONTROLLER_MANAGER, _kube_controller_manager_rules()),
        cluster_role("system:node-proxier", _node_proxier_rules()),
        *(cluster_role(CONTROLLER_ROLE_PREFIX + account, rules) for account, rules in controller_roles().items()),
    ]


def default_cluster_role_bindings() -> list[dict]:
    """The default ClusterRoleBindings."""
    return [
        cluster_role_binding("cluster-admin", [SYSTEM_MASTERS]),
        cluster_role_binding("system:discovery", [AUTHENTICATED]),
        cluster_role_binding("system:basic-user", [AUTHENTICATED]),
        cluster_role_binding("system:public-info-viewer", [AUTHENTICATED, UNAUTHENTICATED]),
        cluster_role_binding("system:node", [NODES]),
        cluster_role_binding("system:service-account-issuer-discovery", [SERVICE_ACCOUNTS]),
        cluster_role_binding(KUBE_CONTROLLER_MANAGER, [], [_user(KUBE_CONTROLLER_MANAGER)]),
        cluster_role_binding("system:node-proxier", [], [_user(KUBE_PROXY)]),
        *(cluster_role_binding(CONTROLLER_ROLE_PREFIX + account, [], [
            {"kind": "ServiceAccount", "name": account, "namespace": CONTROLLERS_NAMESPACE}
        ]) for account in controller_roles()),
    ]
