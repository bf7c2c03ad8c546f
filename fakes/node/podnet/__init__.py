"""Start-up code for Python programs in the simulated node's pods: this directory goes on their ``PYTHONPATH``.

Its ``sitecustomize`` module, imported by Python at start-up, puts a pod's wildcard binds on
the pod's own address (see there).  Nothing here is imported by the node itself.
"""
