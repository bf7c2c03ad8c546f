#!/usr/bin/env bash
# Launch this kernelspec's kernel as a Spark application on Kubernetes, as
# Enterprise Gateway runs a Spark kernelspec's argv:
#
#   run.sh {connection_file} --RemoteProcessProxy.response-address HOST:PORT \
#          --RemoteProcessProxy.spark-context-initialization-mode lazy \
#          [--RemoteProcessProxy.public-key KEY]
#
# 1. scripts/launch_kubernetes.py renders scripts/kernel-pod.yaml for this
#    kernel (its arguments are passed on unchanged);
# 2. spark-submit (cluster mode, SPARK_OPTS from kernel.json's env) creates the
#    driver from that template; the driver runs the image's kernel launcher,
#    which calls the gateway back at the response address.
#
# SPARK_OPTS may refer to ${KERNEL_ID}, ${KERNEL_USERNAME}, ${KERNEL_NAMESPACE},
# ${KERNEL_SERVICE_ACCOUNT_NAME}, ${KUBERNETES_SERVICE_HOST},
# ${KUBERNETES_SERVICE_PORT} and ${EG_KUBERNETES_KERNEL_IMAGE} only.  They are
# replaced as text, never evaluated by a shell, and each value must be one word
# of letters, digits and . _ : / @ - (client-supplied values cannot inject
# options or commands).  Values are never printed.
set -euo pipefail

die() {
    printf 'run.sh: %s\n' "$*" >&2
    exit 1
}

PROG_HOME=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
SPARK_DRIVER_APP=${SPARK_DRIVER_APP:-local:///opt/kernelgate/spark_driver.py}

[[ -n "${SPARK_HOME:-}" ]] || die "SPARK_HOME is not set; it must name a Spark installation"
[[ -x "${SPARK_HOME}/bin/spark-submit" ]] || die "SPARK_HOME has no executable bin/spark-submit"
[[ -n "${SPARK_OPTS:-}" ]] || die "SPARK_OPTS is not set (it comes from kernel.json's env)"
[[ -n "${KERNEL_ID:-}" ]] || die "KERNEL_ID is not set"
[[ "${KERNEL_ID}" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]] \
    || die "KERNEL_ID is not a UUID"

KERNEL_USERNAME=${KERNEL_USERNAME:-${USER:-jovyan}}
KERNEL_NAMESPACE=${KERNEL_NAMESPACE:-default}
KERNEL_SERVICE_ACCOUNT_NAME=${KERNEL_SERVICE_ACCOUNT_NAME:-default}
if [[ -z "${EG_KUBERNETES_KERNEL_IMAGE:-}" ]]; then
    EG_KUBERNETES_KERNEL_IMAGE=${KERNEL_IMAGE:-}
fi
if [[ -z "${EG_KUBERNETES_KERNEL_IMAGE}" ]]; then
    EG_KUBERNETES_KERNEL_IMAGE=$("${PYTHON}" -c '
import json, sys
spec = json.load(open(sys.argv[1]))
print(spec["metadata"]["process_proxy"]["config"]["image_name"])
' "${PROG_HOME}/kernel.json") || die "kernel.json names no image (metadata.process_proxy.config.image_name)"
fi

# Expand the known ${VAR} references of SPARK_OPTS, then split it into words.
opts=${SPARK_OPTS}
for name in KERNEL_ID KERNEL_USERNAME KERNEL_NAMESPACE KERNEL_SERVICE_ACCOUNT_NAME \
            KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT EG_KUBERNETES_KERNEL_IMAGE; do
    reference="\${${name}}"
    [[ "${opts}" == *"${reference}"* ]] || continue
    value=${!name:-}
    [[ -n "${value}" ]] || die "SPARK_OPTS uses ${reference}, which is not set"
    [[ "${value}" =~ ^[A-Za-z0-9._:/@-]+$ ]] || die "${reference} holds characters SPARK_OPTS cannot carry"
    opts=${opts//"${reference}"/"${value}"}
done
[[ "${opts}" != *'$'* ]] || die "SPARK_OPTS refers to a variable run.sh does not provide"
read -r -a spark_opts <<< "${opts}"

template=$(mktemp "${TMPDIR:-/tmp}/kpt_${KERNEL_ID}.XXXXXX")
trap 'rm -f -- "${template}"' EXIT
KERNEL_USERNAME=${KERNEL_USERNAME} KERNEL_NAMESPACE=${KERNEL_NAMESPACE} \
KERNEL_SERVICE_ACCOUNT_NAME=${KERNEL_SERVICE_ACCOUNT_NAME} KERNEL_IMAGE=${EG_KUBERNETES_KERNEL_IMAGE} \
    "${PYTHON}" "${PROG_HOME}/scripts/launch_kubernetes.py" "$@" \
    --RemoteProcessProxy.kernel-id "${KERNEL_ID}" > "${template}" \
    || die "could not render scripts/kernel-pod.yaml"

# waitAppCompletion=false in SPARK_OPTS: spark-submit returns once the driver is created.
"${SPARK_HOME}/bin/spark-submit" "${spark_opts[@]}" \
    --conf "spark.kubernetes.driver.podTemplateFile=${template}" \
    --conf "spark.kubernetes.executor.podTemplateFile=${template}" \
    "${SPARK_DRIVER_APP}"
