#!/usr/bin/env bash
# Installs what the local environment and the tests need on a fresh machine: Debian packages
# (when missing), the plain user Gitea runs as (when root), and the pinned binaries built
# from the Go module proxy (cached by version).
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"

missing=()
for pair in docker-registry:docker-registry runc:runc git:git htpasswd:apache2-utils \
  openssl:openssl curl:curl flock:util-linux containerd:containerd; do
  cmd=${pair%%:*} pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# The base test image is made from the static busybox binary.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
# The test environment's PostgreSQL (its server binaries; env-up makes its own cluster).
postgres_bin >/dev/null || missing+=(postgresql)
# The web UI's browser test drives headless Chromium; a CJK font makes its Chinese
# screenshots readable.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
# The real node's pod network: bridge and host-local.
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]} (or install them yourself)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" = 0 ] && ! id "$GITEA_RUN_AS" >/dev/null 2>&1; then
  log "creating the system user $GITEA_RUN_AS (Gitea refuses to run as root)"
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$GITEA_RUN_AS"
fi
"$HACK/build-tools.sh"
