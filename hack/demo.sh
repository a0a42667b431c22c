#!/usr/bin/env bash
# The demo: seed 1.1's 2048 game deployed by YAML on the local real environment.
#   1. start (or reuse) the environment;
#   2. push examples/2048-yaml to the local Git server as repository jack-2048;
#   3. `slipway run` it: BUILD_ID, server-side dry-run, apply, prune, health wait;
#   4. print how to look at the result.
# Image builds arrive with the build-image task; until then the demo pipeline is the
# example's deploy stage, with an image tag the demo names itself.
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
clusters:
  - name: seconddevops
    kubeconfig: $KUBECONFIG
registry:
  default: $SLIPWAY_REGISTRY
  insecure: [$SLIPWAY_REGISTRY]
CFG

# The repository: the example's files, with its deploy stage as the pipeline.
cp -r "$ROOT/examples/2048-yaml/." "$DEMO/work/"
cat >"$DEMO/work/.pipeline.yaml" <<PIPE
# examples/2048-yaml's deploy stage (the build stage needs the build-image task).
name: jack-2048
description: Deploy the 2048 game by YAML (seed 1.1)
variables:
  REGISTRY: $SLIPWAY_REGISTRY
  DOMAIN: 2048.example.cn
stages:
  - name: deploy
    tasks:
      - name: deploy-2048
        type: deploy-yaml
        path: 2048_env.yaml
        cluster: seconddevops
        namespace: seconddevops
        wait: 2m
PIPE
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

The 2048 game is deployed. Look at it:
  . .slipway/testenv.env && kubectl -n seconddevops get deployment,service,ingress,pods
  bin/slipway history --config .slipway/demo/slipway.yaml jack-2048
  bin/slipway logs --config .slipway/demo/slipway.yaml jack-2048 1
Change .slipway/demo/work, commit and push, then run again (or keep it running with
  bin/slipway serve --config .slipway/demo/slipway.yaml), and stop everything with make env-down.
DONE
