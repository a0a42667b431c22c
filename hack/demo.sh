#!/usr/bin/env bash
# The demo: seed 1.1's 2048 game deployed by YAML on the local real environment.
#   1. start (or reuse) the environment;
#   2. push examples/2048-yaml to the local Git server as repository jack-2048;
#   3. `slipway run` it: BUILD_ID, build and push jack-2048:alpha-<BUILD_ID>, server-side
#      dry-run, apply, prune, health wait;
#   4. print how to look at the result.
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"
ROOT=$(cd "$HACK/.." && pwd)
"$HACK/env-up.sh"
# shellcheck disable=SC1091
. "$ROOT/.slipway/testenv.env"

DEMO="$ROOT/.slipway/demo"
rm -rf "$DEMO"
mkdir -p "$DEMO/work" "$DEMO/data"
printf '%s' "$SLIPWAY_GIT_USER" >"$DEMO/git-user"
printf '%s' "$SLIPWAY_GIT_PASSWORD" >"$DEMO/git-password"
chmod 600 "$DEMO"/git-*

cat >"$DEMO/slipway.yaml" <<CFG
dataDir: $DEMO/data
repositories:
  - name: jack-2048
    url: $SLIPWAY_GIT_URL/jack-2048.git
    branch: master
    poll: 10s
    auth: {usernameFile: git-user, passwordFile: git-password}
    # What this repository may deploy (docs/policy.md): without grants it may deploy nothing.
    # Without grants it may deploy nothing, push nowhere and read no secret.
    policy: {clusters: [seconddevops], namespaces: [seconddevops], registries: [$SLIPWAY_REGISTRY], push: [$SLIPWAY_REGISTRY/devops]}
clusters:
  - name: seconddevops
    kubeconfig: $KUBECONFIG
registry:
  default: $SLIPWAY_REGISTRY
  insecure: [$SLIPWAY_REGISTRY]
CFG

# The repository: the example as it is, but for two lines that point at this machine's
# registry instead of the seed's hub.ecns.io: the pipeline's REGISTRY variable, and the
# Dockerfile's base image (no internet here; the environment's busybox base stands in).
cp -r "$ROOT/examples/2048-yaml/." "$DEMO/work/"
sed -i "s#^  REGISTRY: hub.ecns.io#  REGISTRY: $SLIPWAY_REGISTRY#" "$DEMO/work/.pipeline.yaml"
sed -i "1s#^FROM .*#FROM $SLIPWAY_BASE_IMAGE#" "$DEMO/work/Dockerfile"
grep -q "REGISTRY: $SLIPWAY_REGISTRY" "$DEMO/work/.pipeline.yaml" || die "could not point the example at $SLIPWAY_REGISTRY"
rm -rf "$SLIPWAY_GIT_ROOT/jack-2048.git"
git init -q --bare --initial-branch=master "$SLIPWAY_GIT_ROOT/jack-2048.git"
(
  cd "$DEMO/work"
  export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
  git init -q --initial-branch=master .
  git add -A
  git commit -q -m "2048 by YAML"
  git push -q "http://$SLIPWAY_GIT_USER:$SLIPWAY_GIT_PASSWORD@${SLIPWAY_GIT_URL#http://}/jack-2048.git" master
)
kubectl create namespace seconddevops --dry-run=client -o yaml | kubectl apply -f - >/dev/null

(cd "$ROOT" && go build -o "$ROOT/bin/slipway" ./cmd/slipway)
"$ROOT/bin/slipway" run --config "$DEMO/slipway.yaml" --repo jack-2048

cat <<DONE

The 2048 game is built and deployed. Look at it:
  . .slipway/testenv.env && kubectl -n seconddevops get deployment,service,ingress,pods
  bin/slipway history --config .slipway/demo/slipway.yaml jack-2048
  bin/slipway logs --config .slipway/demo/slipway.yaml jack-2048 1
  curl -s http://$SLIPWAY_REGISTRY/v2/devops/jack-2048/tags/list
Change .slipway/demo/work, commit and push, then run again (or keep it running with
  bin/slipway serve --config .slipway/demo/slipway.yaml), and stop everything with make env-down.
DONE
