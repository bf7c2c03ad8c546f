"""Field numbers of the Kubernetes protobuf messages the simulated API server decodes.

kubectl 1.32 sends the bodies of its typed requests (``kubectl create
configmap|secret|namespace|serviceaccount|service|role|rolebinding|...``,
``kubectl create token``, ``kubectl auth can-i [--list]``, ``kubectl auth whoami``) as protobuf.  This table
gives, for each message those bodies contain, its fields by number: the JSON
name and the type (a scalar, another message, ``[]T`` for repeated fields,
``map:T`` for maps with string keys).  The numbers are the wire format
published in the ``generated.proto`` files of ``k8s.io/api`` (core/v1,
rbac/v1, authorization/v1, authentication/v1) and ``k8s.io/apimachinery``
(meta/v1); :mod:`fakes.apiserver.protobuf` reads bodies with it.
"""

from __future__ import annotations

MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "SelfSubjectAccessReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectAccessReviewSpec"), 3: ("status", "SubjectAccessReviewStatus")},
    "ObjectMeta": {1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"), 4: ("selfLink", "string"), 5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int64"), 8: ("creationTimestamp", "Time"), 9: ("deletionTimestamp", "Time"), 10: ("deletionGracePeriodSeconds", "int64"), 11: ("labels", "map:string"), 12: ("annotations", "map:string"), 13: ("ownerReferences", "[]OwnerReference"), 14: ("finalizers", "[]string"), 17: ("managedFields", "[]ManagedFieldsEntry")},
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"), 5: ("apiVersion", "string"), 6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ManagedFieldsEntry": {1: ("manager", "string"), 2: ("operation", "string"), 3: ("apiVersion", "string"), 4: ("time", "Time"), 6: ("fieldsType", "string"), 7: ("fieldsV1", "FieldsV1"), 8: ("subresource", "string")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"), 2: ("nonResourceAttributes", "NonResourceAttributes")},
    "ResourceAttributes": {1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"), 4: ("version", "string"), 5: ("resource", "string"), 6: ("subresource", "string"), 7: ("name", "string"), 8: ("fieldSelector", "FieldSelectorAttributes"), 9: ("labelSelector", "LabelSelectorAttributes")},
    "FieldSelectorAttributes": {1: ("rawSelector", "string"), 2: ("requirements", "[]FieldSelectorRequirement")},
    "FieldSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "[]string")},
    "LabelSelectorAttributes": {1: ("rawSelector", "string"), 2: ("requirements", "[]LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "[]string")},
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SubjectAccessReviewStatus": {1: ("allowed", "bool"), 2: ("reason", "string"), 3: ("evaluationError", "string"), 4: ("denied", "bool")},
    "SubjectAccessReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SubjectAccessReviewSpec"), 3: ("status", "SubjectAccessReviewStatus")},
    "SubjectAccessReviewSpec": {1: ("resourceAttributes", "ResourceAttributes"), 2: ("nonResourceAttributes", "NonResourceAttributes"), 3: ("user", "string"), 4: ("groups", "[]string"), 5: ("extra", "map:ExtraValue"), 6: ("uid", "string")},
    "ExtraValue": {1: ("items", "[]string")},
    "SelfSubjectRulesReview": {1: ("metadata", "ObjectMeta"), 2: ("spec", "SelfSubjectRulesReviewSpec"), 3: ("status", "SubjectRulesReviewStatus")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
    "SubjectRulesReviewStatus": {1: ("resourceRules", "[]ResourceRule"), 2: ("nonResourceRules", "[]NonResourceRule"), 3: ("incomplete", "bool"), 4: ("evaluationError", "string")},
    "ResourceRule": {1: ("verbs", "[]string"), 2: ("apiGroups", "[]string"), 3: ("resources", "[]string"), 4: ("resourceNames", "[]string")},
    "NonResourceRule": {1: ("verbs", "[]string"), 2: ("nonResourceURLs", "[]string")},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta"), 2: ("status", "SelfSubjectReviewStatus")},
    "SelfSubjectReviewStatus": {1: ("userInfo", "UserInfo")},
    "UserInfo": {1: ("username", "string"), 2: ("uid", "string"), 3: ("groups", "[]string"), 4: ("extra", "map:ExtraValue")},
    "TokenRequest": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenRequestSpec"), 3: ("status", "TokenRequestStatus")},
    "TokenRequestSpec": {1: ("audiences", "[]string"), 3: ("boundObjectRef", "BoundObjectReference"), 4: ("expirationSeconds", "int64"), 5: ("attestations", "map:AttestationValue")},
    "BoundObjectReference": {1: ("kind", "string"), 2: ("apiVersion", "string"), 3: ("name", "string"), 4: ("uID", "string")},
    "AttestationValue": {1: ("items", "[]string")},
    "TokenRequestStatus": {1: ("token", "string"), 2: ("expirationTimestamp", "Time")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:string"), 3: ("binaryData", "map:bytes"), 4: ("immutable", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "string"), 4: ("stringData", "map:string"), 5: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "NamespaceStatus")},
    "NamespaceSpec": {1: ("finalizers", "[]string")},
    "NamespaceStatus": {1: ("phase", "string"), 2: ("conditions", "[]NamespaceCondition")},
    "NamespaceCondition": {1: ("type", "string"), 2: ("status", "string"), 4: ("lastTransitionTime", "Time"), 5: ("reason", "string"), 6: ("message", "string")},
    "ServiceAccount": {1: ("metadata", "ObjectMeta"), 2: ("secrets", "[]ObjectReference"), 3: ("imagePullSecrets", "[]LocalObjectReference"), 4: ("automountServiceAccountToken", "bool")},
    "ObjectReference": {1: ("kind", "string"), 2: ("namespace", "string"), 3: ("name", "string"), 4: ("uid", "string"), 5: ("apiVersion", "string"), 6: ("resourceVersion", "string"), 7: ("fieldPath", "string")},
    "LocalObjectReference": {1: ("name", "string")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec"), 3: ("status", "ServiceStatus")},
    "ServiceSpec": {1: ("ports", "[]ServicePort"), 2: ("selector", "map:string"), 3: ("clusterIP", "string"), 4: ("type", "string"), 5: ("externalIPs", "[]string"), 7: ("sessionAffinity", "string"), 8: ("loadBalancerIP", "string"), 9: ("loadBalancerSourceRanges", "[]string"), 10: ("externalName", "string"), 11: ("externalTrafficPolicy", "string"), 12: ("healthCheckNodePort", "int32"), 13: ("publishNotReadyAddresses", "bool"), 14: ("sessionAffinityConfig", "SessionAffinityConfig"), 17: ("ipFamilyPolicy", "string"), 18: ("clusterIPs", "[]string"), 19: ("ipFamilies", "[]string"), 20: ("allocateLoadBalancerNodePorts", "bool"), 21: ("loadBalancerClass", "string"), 22: ("internalTrafficPolicy", "string"), 23: ("trafficDistribution", "string")},
    "ServicePort": {1: ("name", "string"), 2: ("protocol", "string"), 3: ("port", "int32"), 4: ("targetPort", "IntOrString"), 5: ("nodePort", "int32"), 6: ("appProtocol", "string")},
    "SessionAffinityConfig": {1: ("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: ("timeoutSeconds", "int32")},
    "ServiceStatus": {1: ("loadBalancer", "LoadBalancerStatus"), 2: ("conditions", "[]Condition")},
    "LoadBalancerStatus": {1: ("ingress", "[]LoadBalancerIngress")},
    "LoadBalancerIngress": {1: ("ip", "string"), 2: ("hostname", "string"), 3: ("ipMode", "string"), 4: ("ports", "[]PortStatus")},
    "PortStatus": {1: ("port", "int32"), 2: ("protocol", "string"), 3: ("error", "string")},
    "Condition": {1: ("type", "string"), 2: ("status", "string"), 3: ("observedGeneration", "int64"), 4: ("lastTransitionTime", "Time"), 5: ("reason", "string"), 6: ("message", "string")},
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule")},
    "PolicyRule": {1: ("verbs", "[]string"), 2: ("apiGroups", "[]string"), 3: ("resources", "[]string"), 4: ("resourceNames", "[]string"), 5: ("nonResourceURLs", "[]string")},
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule"), 3: ("aggregationRule", "AggregationRule")},
    "AggregationRule": {1: ("clusterRoleSelectors", "[]LabelSelector")},
    "LabelSelector": {1: ("matchLabels", "map:string"), 2: ("matchExpressions", "[]LabelSelectorRequirement")},
    "RoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
    "Subject": {1: ("kind", "string"), 2: ("apiGroup", "string"), 3: ("name", "string"), 4: ("namespace", "string")},
    "RoleRef": {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")},
    "ClusterRoleBinding": {1: ("metadata", "ObjectMeta"), 2: ("subjects", "[]Subject"), 3: ("roleRef", "RoleRef")},
}

ROOT_KINDS = frozenset({
    "SelfSubjectAccessReview", "SubjectAccessReview", "SelfSubjectRulesReview", "SelfSubjectReview", "TokenRequest", "ConfigMap", "Secret", "Namespace",
    "ServiceAccount", "Service", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
})
"""The kinds whose protobuf bodies are understood."""

JSON_NAMES = {("BoundObjectReference", "uID"): "uid"}
"""Fields whose protobuf name differs from their JSON name."""

STRING_LISTS = frozenset({"ExtraValue", "AttestationValue"})
"""Messages that wrap a list of strings and are a plain JSON array on the wire in JSON."""
