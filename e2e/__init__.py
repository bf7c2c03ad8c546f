"""The kind target: a kind cluster, the images, the manifests applied, the scenarios replayed."""
