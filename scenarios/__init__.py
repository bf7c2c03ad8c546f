"""Black-box scenarios: the gateway over HTTP and WebSocket, the cluster through the cluster interface."""
