"""Who may do what on the simulated cluster.

``identity`` (users, groups, bearer tokens), ``rbac`` (the authorizer, evaluating the stored
Roles and bindings as ``k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac`` does),
``bootstrap_roles`` (the policy a fresh cluster holds), ``escalation`` (no one grants what they
do not hold), ``reviews`` (access-review decisions) and ``impersonation``.  The room reads
stored roles through ``rbac.RuleSource`` and imports nothing else of the simulated cluster.
"""
