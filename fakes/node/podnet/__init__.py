"""Start-up code for Python programs in the simulated node's pods: this directory goes on their ``PYTHONPATH``.

Its ``sitecustomize`` module, imported by Python at start-up, gives a pod's sockets the pod's own
address: wildcard binds to a given port and connections into the simulated cluster (see there).
Nothing here is imported by the node itself.
"""
