"""What the gateway tells operators besides its API: metrics (``metrics``) and kernel-tagged logs (``logs``).

Both modules import nothing of the gateway, so every layer may report into them; the
composition root (``gateway.app``) makes one :class:`~gateway.observability.metrics.GatewayMetrics`
per gateway and hands it to the parts that report.  The Kubernetes Events the gateway
writes about kernels are the cluster's business: :mod:`gateway.cluster.events`.
"""
