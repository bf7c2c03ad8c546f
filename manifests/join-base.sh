#!/bin/sh
# Writes enterprise-gateway.yaml from base/: a header, then the base's files in the
# order of its kustomization.yaml. Run it after editing base/:  sh manifests/join-base.sh
set -eu
here=$(cd -- "$(dirname -- "$0")" && pwd)
out=${1:-"$here/enterprise-gateway.yaml"}
{
cat <<'HEADER'
# kernelgate deployed as Enterprise Gateway is: kubectl apply -f manifests/enterprise-gateway.yaml
#
# Written by manifests/join-base.sh from the kustomize base (manifests/base): edit the
# base, then run the script. Optional parts are kustomize components in
# manifests/components, one overlay each in manifests/overlays:
#   kernelspecs-pv     kernelspecs on an NFS PersistentVolume, mounted by the gateway
#   external-ips       the Service's externalIPs
#   shared-namespace   EG_SHARED_NAMESPACE=True: kernels in the gateway's namespace
#   kernel-namespace   a pre-created kernel namespace (kernel-ns) with its service account (kernel-sa)
#
# Every object is labelled app=enterprise-gateway and component=enterprise-gateway|kernel:
#   kubectl get all -l app=enterprise-gateway --all-namespaces
#   kubectl delete clusterrole,clusterrolebinding -l app=enterprise-gateway
HEADER
first=1
for file in $(sed -n 's/^  - \(.*\.yaml\)$/\1/p' "$here/base/kustomization.yaml"); do
    [ "$first" = 1 ] || echo '---'
    first=0
    cat "$here/base/$file"
done
} > "$out"
