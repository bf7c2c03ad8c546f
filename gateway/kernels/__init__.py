"""The kernel service: every kernel of the cluster as a gateway replica serves it, their lifecycle, activity, culling and limits.

``service`` holds :class:`~gateway.kernels.service.KernelService`, what the HTTP
layer calls; ``kernel`` one kernel's state machine (states, transitions, diagram)
and model; ``records`` the kernel records every replica serves kernels from,
``recorded`` what goes into them, ``follower`` this replica's kernels kept as
the records say; ``operations`` restart, shutdown and auto-restart claimed
through a kernel's record; ``pods`` the steps that launch, stop and release a
kernel's pod through the provisioner; ``admissions`` the limits counted across
replicas; ``duties`` what only the Lease holder runs: ``restarts`` (the
auto-restart of kernels whose pod died), ``culling`` (the idle culler, with
``presence``: clients connected through other replicas) and ``collect`` (what
dead replicas left behind); ``specs`` the kernelspecs offered (allow-list,
users); ``env`` a client's env checked and turned into a kernel's; ``channels``
the ZMQ sockets to a kernel; ``activity`` the iopub watcher, ``activitywrite``
its write-back into the record; ``telemetry`` the metrics and Kubernetes Events
of kernels' lives; ``settings`` and ``errors`` what configures it and what it
raises.
"""
