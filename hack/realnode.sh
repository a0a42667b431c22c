# The environment's one real node: containerd (Debian's, with runc and the CNI plugins) and a
# kubelet built from the pinned Kubernetes modules, joined to the control plane beside the kwok
# nodes and tainted so that only pods that tolerate it land there. Sourced by hack/env-up.sh
# and hack/env-down.sh, which set STATE, BASE, REG_PORT, REG_AUTH_PORT, API_PORT and the
# start/wait_for helpers.
#
# Everything it owns is keyed by the port base, so several checkouts can each run one on the
# same machine: the state folder, the ports, the CNI bridge and subnet, and the cgroup root
# (a kubelet removes pod cgroups it does not know under its root, so roots must not be shared).

REAL_NODE=slipway-real-node
REAL_NODE_TAINT_KEY=slipway.dev/real-node
REAL_NODE_TAINT="$REAL_NODE_TAINT_KEY=true:NoSchedule"

realnode_vars() {
  KUBELET_PORT=$((BASE + 10)) KUBELET_HEALTHZ_PORT=$((BASE + 11))
  RN_DIR=$STATE/realnode
  RN_BRIDGE=slw$BASE
  # 10.100.0.0/24 upwards, one /24 per port base; clear of the service range (10.96/16) and
  # kwok's pod range (10.244/16).
  RN_SUBNET=10.$((100 + BASE / 100 % 140)).0.0/24
  RN_CGROUP=slipway-$BASE
  CTR_SOCK=$RN_DIR/containerd/containerd.sock
}

# realnode_cgroups prints every cgroup hierarchy's folder for this environment's pods (the
# kubelet also uses the unified one of a hybrid layout).
realnode_cgroups() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h" ] && echo "${h%/}/$RN_CGROUP"
  done
}

write_realnode_config() {
  mkdir -p "$RN_DIR/containerd/certs.d" "$RN_DIR/cni/net.d" "$RN_DIR/kubelet"
  local port
  for port in "$REG_PORT" "$REG_AUTH_PORT"; do
    mkdir -p "$RN_DIR/containerd/certs.d/127.0.0.1:$port"
    cat >"$RN_DIR/containerd/certs.d/127.0.0.1:$port/hosts.toml" <<TOML
server = "http://127.0.0.1:$port"
[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve"]
TOML
  done
  # restrict_oom_score_adj: processes here may not lower their OOM score; without it every
  # sandbox fails in runc ("can't get final child's PID from pipe: EOF").
  cat >"$RN_DIR/containerd/config.toml" <<TOML
version = 2
root = "$RN_DIR/containerd/root"
state = "$RN_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$CTR_SOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$RN_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "127.0.0.1:$REG_PORT/pause:1"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RN_DIR/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$RN_DIR/containerd/certs.d"
TOML
  cat >"$RN_DIR/cni/net.d/10-slipway.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "slipway-$BASE",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$RN_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$RN_SUBNET"}]], "dataDir": "$RN_DIR/cni/ipam"}
    }
  ]
}
JSON
  # The API server reaches the kubelet (logs, exec) with a client certificate of the
  # environment's CA; nobody else may.
  cat >"$RN_DIR/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$RN_CGROUP
failSwapOn: false
containerRuntimeEndpoint: unix://$CTR_SOCK
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: AlwaysAllow}
registerWithTaints:
- {key: $REAL_NODE_TAINT_KEY, value: "true", effect: NoSchedule}
podLogsDir: $RN_DIR/pod-logs
volumePluginDir: $RN_DIR/kubelet/volume-plugins
oomScoreAdj: 0
maxPods: 30
serializeImagePulls: false
YAML
}

# start_real_node starts containerd and the kubelet; wait_real_node waits for the node.
start_real_node() {
  realnode_vars
  write_realnode_config
  echo "$BASE" >"$RN_DIR/base" # for env-down, whatever base it is called with
  # The sandbox ("pause") image: registry.k8s.io is out of reach, so busybox sleeping.
  "$STATE/bin/pushbase" -ref "127.0.0.1:$REG_PORT/pause:1" -entrypoint /bin/sleep,2147483647 >/dev/null
  local cg
  for cg in $(realnode_cgroups); do
    mkdir -p "$cg"
    # A new cpuset cgroup starts with no CPUs and no memory nodes.
    if [ -f "$cg/cpuset.cpus" ]; then
      cat "$(dirname "$cg")/cpuset.cpus" >"$cg/cpuset.cpus"
      cat "$(dirname "$cg")/cpuset.mems" >"$cg/cpuset.mems"
    fi
  done
  start containerd containerd --config "$RN_DIR/containerd/config.toml"
  wait_for containerd 30 ctr --address "$CTR_SOCK" version
  local kube; kube=$(tool_dir kube "$K8S_VERSION")
  start kubelet "$kube/kubelet" --config "$RN_DIR/kubelet/config.yaml" --kubeconfig "$STATE/admin.kubeconfig" \
    --root-dir "$RN_DIR/kubelet/root" --cert-dir "$RN_DIR/kubelet/pki" --hostname-override "$REAL_NODE" --v 1
}

wait_real_node() {
  local kc=("$(tool_dir kube "$K8S_VERSION")/kubectl" --kubeconfig "$STATE/admin.kubeconfig")
  wait_for "real node $REAL_NODE" 90 "${kc[@]}" wait --for=condition=Ready "node/$REAL_NODE" --timeout=1s
  # No node lifecycle controller runs to lift the not-ready taint admission put on it.
  "${kc[@]}" taint nodes "$REAL_NODE" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
}

# stop_real_node stops the kubelet, then every container (tasks killed through containerd,
# then their shims), then containerd; unmounts what they mounted under the state folder and
# removes the bridge and cgroups. Only processes whose command line names $STATE are touched.
stop_real_node() {
  realnode_vars
  local pid
  pid=$(cat "$STATE/pids/kubelet" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ours "$pid"; then
    # It keeps no state worth a graceful stop, and takes seconds over one.
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -S "$CTR_SOCK" ] && command -v ctr >/dev/null 2>&1; then
    local ctr=(ctr --address "$CTR_SOCK" --timeout 10s -n k8s.io) id
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
    done
  fi
  pid=$(cat "$STATE/pids/containerd" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Shims outlive containerd by design; theirs name our socket. Containers still running
  # under a killed shim would be orphans, so they went first (tasks kill above).
  for pid in $(pgrep -f containerd-shim 2>/dev/null || true); do
    ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  # Mounts under the state folder (emptyDirs, tokens, rootfs, netns), deepest first.
  local m
  { awk '{print $5}' /proc/self/mountinfo | grep -F "$STATE/" || true; } | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  ip link del "$RN_BRIDGE" >/dev/null 2>&1 || true
  local cg
  for cg in $(realnode_cgroups); do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}
