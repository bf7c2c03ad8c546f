#!/bin/sh
# Entry point of the kernel images built from images/ (kernel-r, kernel-scala,
# kernel-tf-py, kernel-spark-*): the kernel pod's command, or the image's
# default command behind Spark's entry point.  It picks the kernel for
# KERNEL_LANGUAGE and execs the kernel launcher, `python -m gateway.launcher`,
# which starts that kernel, sends its connection info to the gateway and
# serves the gateway's signals.
#
#   python  an IPython kernel (the launcher's default)
#   r       IRkernel:  R --slave -e 'IRkernel::main()' --args {connection_file}
#   scala   almond:    /opt/almond/almond --connection-file {connection_file}
#
# The gateway fills the pod's environment: KERNEL_ID, EG_RESPONSE_ADDRESS,
# KERNEL_RESPONSE_KEY (and PUBLIC_KEY for legacy payloads), KERNEL_POD_IP,
# PORT_RANGE, KERNEL_LANGUAGE, SPARK_CONTEXT_INITIALIZATION_MODE,
# KERNEL_LAUNCH_TIMEOUT.  The launcher reads most of them itself.  This script
# never prints a variable's value: some of them are keys.
set -eu

fail() {
    echo "bootstrap-kernel.sh: $*" >&2
    exit 1
}

require() {
    command -v "$1" >/dev/null 2>&1 || fail "this image has no $2 ($1 not found), so it cannot run KERNEL_LANGUAGE's kernel"
}

language=$(printf '%s' "${KERNEL_LANGUAGE:-python}" | tr '[:upper:]' '[:lower:]')
set --
case "$language" in
    python) ;;
    r)
        require R "R installation"
        set -- --kernel-cmd "R --slave -e 'IRkernel::main()' --args {connection_file}"
        ;;
    scala)
        require /opt/almond/almond "almond Scala kernel"
        set -- --kernel-cmd "/opt/almond/almond --connection-file {connection_file}"
        ;;
    *) fail "KERNEL_LANGUAGE names a language this image does not run (python, r or scala)" ;;
esac

case "${SPARK_CONTEXT_INITIALIZATION_MODE:-none}" in
    none|lazy|eager) set -- "$@" --spark-context-initialization-mode "${SPARK_CONTEXT_INITIALIZATION_MODE:-none}" ;;
    *) fail "SPARK_CONTEXT_INITIALIZATION_MODE must be none, lazy or eager" ;;
esac
# Keep trying to reach the gateway for as long as it waits for this kernel.
case "${KERNEL_LAUNCH_TIMEOUT:-}" in
    [0-9]*) case "$KERNEL_LAUNCH_TIMEOUT" in
                *[!0-9.]*|*.*.*) ;;
                *) set -- "$@" --response-timeout "$KERNEL_LAUNCH_TIMEOUT" ;;
            esac ;;
esac

if command -v python3 >/dev/null 2>&1; then
    exec python3 -m gateway.launcher "$@"
fi
require python "Python for the kernel launcher"
exec python -m gateway.launcher "$@"
