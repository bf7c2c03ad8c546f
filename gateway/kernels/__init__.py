"""The kernel service: kernels as the gateway tracks them, their lifecycle, activity, culling and limits.

``service`` holds :class:`~gateway.kernels.service.KernelService`, what the HTTP
layer calls; ``kernel`` one kernel's state machine (states, transitions, diagram)
and model; ``pods`` the steps that launch, stop and release a kernel's pod
through the provisioner; ``restarts`` the auto-restart of kernels whose pod died;
``specs`` the kernelspecs offered (allow-list, users); ``env`` a client's env
checked and turned into a kernel's; ``channels`` the ZMQ sockets to a kernel;
``activity`` the iopub watcher; ``culling`` the idle culler; ``settings`` and
``errors`` what configures it and what it raises.
"""
