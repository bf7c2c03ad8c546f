"""Launching kernels as pods and talking to their launchers.

``response`` receives the launchers' connection info, ``comm`` sends them
signal and shutdown requests, ``crypto`` holds the gateway's key pairs.
"""
