"""The node agent: what a kubelet does, with local processes for containers; and kube-proxy.

``kubelet`` (:class:`~fakes.node.kubelet.NodeAgent`: registers its node, follows the pods bound
to it, serves their logs), ``podworker`` (one pod's life: start its containers, watch them,
write its status), ``podstatus`` (the status a kubelet reports), ``containers`` (a container
as a process), ``podenv`` (the container's environment from the pod spec), ``sandbox`` (a pod's
hostname, ``/etc/hosts`` and service-account files), ``probes`` (readiness and liveness),
``images`` (which local program an image name runs), ``kernel_images`` (the kernel images,
running this repository's launcher) and ``gateway_image`` (the gateway's image, running
``kernelgate serve``); ``streaming`` and ``logfollow`` (exec, attach, port-forward and followed
logs of its pods), ``kubeletapi`` and ``containerlogs`` (the kubelet's HTTPS API a real API
server proxies those to).  ``proxy`` is kube-proxy: NodePort Services on the node's address.  It
talks to the cluster only through ``gateway.cluster.interface``.
"""
