"""The node agent: what a kubelet does, with local processes for containers.

``kubelet`` (:class:`~fakes.node.kubelet.NodeAgent`: registers its node, follows the pods bound
to it, serves their logs), ``podworker`` (one pod's life: start its containers, watch them,
write its status), ``podstatus`` (the status a kubelet reports), ``containers`` (a container
as a process), ``podenv`` (the container's environment from the pod spec), ``images`` (which
local program an image name runs) and ``kernel_images`` (the kernel images, running this
repository's launcher).  It talks to the cluster only through ``gateway.cluster.interface``.
"""
