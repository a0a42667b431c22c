# Pinned versions of the local environment's parts. Sourced by hack/ scripts.
ETCD_VERSION=v3.6.16
K8S_VERSION=v1.37.2
KWOK_VERSION=v0.8.0
BUILDKIT_VERSION=v0.34.2
GITEA_VERSION=v1.26.0
MAILPIT_VERSION=v1.33.1
