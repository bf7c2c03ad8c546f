#!/bin/sh
# The kernel-py image's entry point (the kernel pod's command): runs the
# kernel launcher, `python -m gateway.launcher`, for a Python kernel.
#
# The gateway fills the pod's environment: KERNEL_ID, EG_RESPONSE_ADDRESS,
# KERNEL_RESPONSE_KEY (and PUBLIC_KEY for legacy payloads), KERNEL_POD_IP,
# PORT_RANGE, KERNEL_LANGUAGE, SPARK_CONTEXT_INITIALIZATION_MODE,
# KERNEL_LAUNCH_TIMEOUT.  The launcher reads most of them itself; this script
# only checks the language and turns the rest into options.  It never prints
# a variable's value: some of them are keys.
set -eu

language=$(printf '%s' "${KERNEL_LANGUAGE:-python}" | tr '[:upper:]' '[:lower:]')
if [ "$language" != "python" ]; then
    echo "bootstrap-kernel.sh: this image runs Python kernels only, and KERNEL_LANGUAGE names another language" >&2
    exit 1
fi

set --
case "${SPARK_CONTEXT_INITIALIZATION_MODE:-none}" in
    none|lazy|eager) set -- "$@" --spark-context-initialization-mode "${SPARK_CONTEXT_INITIALIZATION_MODE:-none}" ;;
    *)
        echo "bootstrap-kernel.sh: SPARK_CONTEXT_INITIALIZATION_MODE must be none, lazy or eager" >&2
        exit 1
        ;;
esac
# Keep trying to reach the gateway for as long as it waits for this kernel.
case "${KERNEL_LAUNCH_TIMEOUT:-}" in
    [0-9]*) case "$KERNEL_LAUNCH_TIMEOUT" in
                *[!0-9.]*|*.*.*) ;;
                *) set -- "$@" --response-timeout "$KERNEL_LAUNCH_TIMEOUT" ;;
            esac ;;
esac

exec python -m gateway.launcher "$@"
