"""The kernel service: kernels as the gateway tracks them, their lifecycle, activity, culling and limits."""
