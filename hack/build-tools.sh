#!/usr/bin/env bash
# Builds the pinned binaries of the local test environment from the Go module proxy and
# caches them by version outside the repository, so a warm machine builds nothing.
#
#   hack/build-tools.sh [tool ...]   (default: all)
#
# Binaries land in $SLIPWAY_CACHE_DIR/bin/<tool>-<version>/ (default ~/.cache/slipway).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/versions.sh"

# wrapper_module DIR MODULE@VERSION PKG... creates a throwaway module in DIR that requires
# MODULE and imports PKG (main packages) from a tools file so `go mod tidy` pins them.
wrapper_module() {
  local dir=$1 req=$2; shift 2
  rm -rf "$dir"; mkdir -p "$dir"
  (
    cd "$dir"
    go mod init slipway.local/tools >/dev/null 2>&1
    {
      echo '//go:build tools'
      echo
      echo 'package tools'
      echo
      echo 'import ('
      for p in "$@"; do echo "	_ \"$p\""; done
      echo ')'
    } >tools.go
    go mod edit -require="$req"
  )
}

tidy() { (cd "$1" && GOFLAGS=-mod=mod go mod tidy >/dev/null); }

build_etcd() {
  local out; out=$(tool_dir etcd "$ETCD_VERSION")
  [ -x "$out/etcd" ] && return 0
  log "building etcd $ETCD_VERSION"
  local src="$SLIPWAY_CACHE_DIR/src/etcd-$ETCD_VERSION"
  wrapper_module "$src" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3
  tidy "$src"
  (cd "$src" && CGO_ENABLED=0 go build -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$out/etcd.tmp" "$out/etcd"
}

build_kube() {
  local out; out=$(tool_dir kube "$K8S_VERSION")
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet) bin missing=()
  for bin in "${bins[@]}"; do [ -x "$out/$bin" ] || missing+=("$bin"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building ${missing[*]} $K8S_VERSION (about 8 minutes cold)"
  local src="$SLIPWAY_CACHE_DIR/src/kube-$K8S_VERSION"
  local staging="v0${K8S_VERSION#v1}"
  wrapper_module "$src" "k8s.io/kubernetes@$K8S_VERSION" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet
  # k8s.io/kubernetes points its staging modules at ./staging; point them at the published
  # modules of the same release instead.
  local gomod
  gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local mod
  for mod in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod"); do
    (cd "$src" && go mod edit -replace="$mod=$mod@$staging")
  done
  tidy "$src"
  local ldflags="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for bin in "${missing[@]}"; do
    (cd "$src" && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$out/$bin.tmp" "k8s.io/kubernetes/cmd/$bin")
    mv "$out/$bin.tmp" "$out/$bin"
  done
}

build_kwok() {
  local out; out=$(tool_dir kwok "$KWOK_VERSION")
  [ -x "$out/kwok" ] && [ -d "$out/stages" ] && return 0
  log "building kwok $KWOK_VERSION"
  local src="$SLIPWAY_CACHE_DIR/src/kwok-$KWOK_VERSION"
  wrapper_module "$src" "sigs.k8s.io/kwok@$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
  tidy "$src"
  (cd "$src" && CGO_ENABLED=0 go build -o "$out/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok)
  # kwok needs Stage objects to simulate nodes and pods; they ship inside the module.
  local moddir
  moddir=$(cd "$src" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  rm -rf "$out/stages"; mkdir -p "$out/stages"
  cp -r "$moddir/kustomize/stage/." "$out/stages/"
  chmod -R u+w "$out/stages"
  mv "$out/kwok.tmp" "$out/kwok"
}

build_buildkit() {
  local out; out=$(tool_dir buildkit "$BUILDKIT_VERSION")
  [ -x "$out/buildkitd" ] && [ -x "$out/buildctl" ] && return 0
  log "building buildkitd and buildctl $BUILDKIT_VERSION"
  local src="$SLIPWAY_CACHE_DIR/src/buildkit-$BUILDKIT_VERSION"
  wrapper_module "$src" "github.com/moby/buildkit@$BUILDKIT_VERSION" \
    github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl
  tidy "$src"
  local bin
  for bin in buildkitd buildctl; do
    (cd "$src" && go build -o "$out/$bin.tmp" "github.com/moby/buildkit/cmd/$bin")
    mv "$out/$bin.tmp" "$out/$bin"
  done
}

# Mailpit is the environment's SMTP server (STARTTLS and auth) with an HTTP API to read the
# mails notifications send.
build_mailpit() {
  local out; out=$(tool_dir mailpit "$MAILPIT_VERSION")
  [ -x "$out/mailpit" ] && return 0
  log "building mailpit $MAILPIT_VERSION"
  local src="$SLIPWAY_CACHE_DIR/src/mailpit-$MAILPIT_VERSION"
  wrapper_module "$src" "github.com/axllent/mailpit@$MAILPIT_VERSION" github.com/axllent/mailpit
  tidy "$src"
  (cd "$src" && CGO_ENABLED=0 go build -ldflags "-X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION" \
    -o "$out/mailpit.tmp" github.com/axllent/mailpit)
  mv "$out/mailpit.tmp" "$out/mailpit"
}

build_gitea() {
  local out; out=$(tool_dir gitea "$GITEA_VERSION")
  [ -x "$out/gitea" ] && [ -d "$out/static/templates" ] && return 0
  log "building gitea $GITEA_VERSION (about 4 minutes cold)"
  local src="$SLIPWAY_CACHE_DIR/src/gitea-$GITEA_VERSION"
  wrapper_module "$src" "code.gitea.io/gitea@$GITEA_VERSION" code.gitea.io/gitea
  # Gitea's own go.mod carries replace directives (and a godebug setting) that a requiring
  # module must repeat.
  local gomod moddir
  gomod=$(cd "$src" && go mod download -json "code.gitea.io/gitea@$GITEA_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -n "$gomod" ] || die "cannot download code.gitea.io/gitea@$GITEA_VERSION"
  awk '/^replace \($/{b=1;next} b&&/^\)/{b=0;next} b{print "replace " $0;next} /^replace /{print} /^godebug /{print}' \
    "$gomod" >>"$src/go.mod"
  tidy "$src"
  # The version stamp is what GET /api/v1/version answers.
  (cd "$src" && CGO_ENABLED=1 go build -tags "sqlite sqlite_unlock_notify" \
    -ldflags "-X main.Version=${GITEA_VERSION#v}" -o "$out/gitea.tmp" code.gitea.io/gitea)
  # Without the bindata tag Gitea reads its templates and assets from STATIC_ROOT_PATH; the
  # copies must be readable by the unprivileged user Gitea insists on running as.
  moddir=$(cd "$src" && go list -m -f '{{.Dir}}' code.gitea.io/gitea)
  rm -rf "$out/static"; mkdir -p "$out/static"
  local d
  for d in templates options public; do cp -r "$moddir/$d" "$out/static/"; done
  chmod -R u+w,a+rX "$out/static"
  chmod 0755 "$out/gitea.tmp"
  mv "$out/gitea.tmp" "$out/gitea"
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(etcd kube kwok buildkit gitea mailpit)
for t in "${tools[@]}"; do
  case $t in
    etcd) build_etcd ;; kube) build_kube ;; kwok) build_kwok ;; buildkit) build_buildkit ;; gitea) build_gitea ;; mailpit) build_mailpit ;;
    *) die "unknown tool $t (etcd, kube, kwok, buildkit, gitea, mailpit)" ;;
  esac
done
