#!/usr/bin/env bash
# Starts the local test environment: every external part Slipway talks to, for real.
#   - a Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
#     kube-scheduler) with two kwok nodes, an admin and a limited (view-only) kubeconfig;
#   - two Distribution registries (anonymous, and htpasswd-protected) holding base/busybox;
#   - a Git smart-HTTP server (git http-backend) with basic auth;
#   - buildkitd;
#   - one real node: containerd and a kubelet that run containers for real, tainted so only
#     pods that tolerate it land there (hack/realnode.sh);
#   - a Gitea forge (pull requests, reviews, webhooks) with an admin user and API token;
#   - PostgreSQL (Debian's server binaries) with its own data folder, a random password and
#     a database the tests may use (SLIPWAY_POSTGRES_URL).
#   - Mailpit: an SMTP server that requires STARTTLS and AUTH, whose HTTP API shows the mail.
# Writes .slipway/testenv.env (shell-sourceable). Reuses a healthy running environment.
set -euo pipefail
HACK=$(cd "$(dirname "$0")" && pwd)
. "$HACK/lib.sh"
ROOT=$(cd "$HACK/.." && pwd)
STATE="$ROOT/.slipway/env"
ENVFILE="$ROOT/.slipway/testenv.env"
mkdir -p "$ROOT/.slipway"

# Ports: one base, overridable, so two checkouts on one machine can each run an environment.
BASE=${SLIPWAY_ENV_PORT_BASE:-17400}
ETCD_PORT=$((BASE + 1)) ETCD_PEER_PORT=$((BASE + 2)) API_PORT=$((BASE + 3))
REG_PORT=$((BASE + 5)) REG_AUTH_PORT=$((BASE + 6)) GIT_PORT=$((BASE + 7)) BUILDKIT_PORT=$((BASE + 8))
GITEA_PORT=$((BASE + 9)) SMTP_PORT=$((BASE + 12)) MAILPIT_PORT=$((BASE + 13)) PG_PORT=$((BASE + 15))

# alive reports whether every recorded process of the environment still runs.
alive() {
  [ -f "$ENVFILE" ] || return 1
  (
    set +u
    . "$ENVFILE"
    local pid
    for pid in $SLIPWAY_ENV_PIDS; do kill -0 "$pid" 2>/dev/null || exit 1; done
  )
}

# healthy reports whether the environment described by $ENVFILE is up and answering.
healthy() {
  alive || return 1
  (
    set +u
    . "$ENVFILE"
    curl -sf --max-time 3 --cacert "$SLIPWAY_ENV_DIR/pki/ca.crt" -H "Authorization: Bearer $(cat "$SLIPWAY_ENV_DIR/admin.token")" \
      "https://127.0.0.1:$SLIPWAY_API_PORT/readyz" >/dev/null || exit 1
    curl -s --max-time 3 -o /dev/null "http://$SLIPWAY_REGISTRY/v2/" || exit 1
    curl -sf --max-time 3 -o /dev/null "$SLIPWAY_GITEA_URL/api/v1/version" || exit 1
    curl -sf --max-time 3 -o /dev/null "$SLIPWAY_MAILPIT_URL/api/v1/info" || exit 1
    [ -n "$SLIPWAY_REAL_NODE_HEALTHZ" ] && curl -sf --max-time 3 -o /dev/null "$SLIPWAY_REAL_NODE_HEALTHZ" || exit 1
    [ -n "${SLIPWAY_POSTGRES_PORT:-}" ] && "$(postgres_bin)/pg_isready" -q -t 3 -h 127.0.0.1 -p "$SLIPWAY_POSTGRES_PORT" || exit 1
  )
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND... retries COMMAND until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${timeout}s; see the logs in $STATE/logs"
    sleep 0.3
  done
}

PIDS=()
# start NAME BINARY ARGS... runs a process in the background with its own log, recording its PID.
start() {
  local name=$1; shift
  # 9>&-: the daemon must not inherit the env lock, or the lock lives as long as it does.
  nohup "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null 9>&- &
  PIDS+=("$!")
  echo "$!" >"$STATE/pids/$name"
}

make_pki() {
  local pki="$STATE/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=slipway-testenv-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >"$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
  # The API server's client certificate towards the real node's kubelet (logs, exec).
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver-kubelet-client/O=system:masters" \
    -keyout "$pki/kubelet-client.key" -out "$pki/kubelet-client.csr" 2>/dev/null
  openssl x509 -req -in "$pki/kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -out "$pki/kubelet-client.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

# kubeconfig FILE USER TOKEN writes a token kubeconfig for the local API server. Responses
# are not compressed: the server is on loopback, where gzip costs both sides CPU and saves
# nothing (Kubernetes' own controllers run this way; docs/operations.md).
kubeconfig() {
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: slipway-testenv
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $STATE/pki/ca.crt
    disable-compression: true
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@slipway-testenv
  context: {cluster: slipway-testenv, user: $2}
current-context: $2@slipway-testenv
KC
  chmod 600 "$1"
}

registry_config() { # FILE PORT DIR [HTPASSWD]
  {
    echo "version: 0.1"
    echo "log: {level: warn}"
    echo "storage:"
    echo "  filesystem: {rootdirectory: $3}"
    echo "  delete: {enabled: true}"
    echo "http: {addr: 127.0.0.1:$2}"
    if [ -n "${4:-}" ]; then
      echo "auth:"
      echo "  htpasswd: {realm: slipway-testenv, path: $4}"
    fi
  } >"$1"
}

start_control_plane() {
  local kube kwokdir
  kube=$(tool_dir kube "$K8S_VERSION") kwokdir=$(tool_dir kwok "$KWOK_VERSION")
  start etcd "$(tool_dir etcd "$ETCD_VERSION")/etcd" --name slipway --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "slipway=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  local admin_token limited_token
  admin_token=$(openssl rand -hex 16) limited_token=$(openssl rand -hex 16)
  echo "$admin_token" >"$STATE/admin.token"
  printf '%s,admin,admin,"system:masters"\n%s,slipway-limited,slipway-limited,"slipway:limited"\n' \
    "$admin_token" "$limited_token" >"$STATE/tokens.csv"
  chmod 600 "$STATE/tokens.csv" "$STATE/admin.token"

  # The endpoint reconciler would publish 127.0.0.1 as the kubernetes Service endpoint,
  # which Endpoints validation rejects; nothing in the environment needs that Service.
  start kube-apiserver "$kube/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$STATE/pki/apiserver.crt" --tls-private-key-file "$STATE/pki/apiserver.key" \
    --client-ca-file "$STATE/pki/ca.crt" --token-auth-file "$STATE/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$STATE/pki/sa.pub" --service-account-signing-key-file "$STATE/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --authorization-mode RBAC --allow-privileged=true \
    --endpoint-reconciler-type none --cert-dir "$STATE/pki/generated" \
    --kubelet-client-certificate "$STATE/pki/kubelet-client.crt" --kubelet-client-key "$STATE/pki/kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP,Hostname
  kubeconfig "$STATE/admin.kubeconfig" admin "$admin_token"
  kubeconfig "$STATE/limited.kubeconfig" slipway-limited "$limited_token"
  wait_for kube-apiserver 90 curl -sf --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $admin_token" \
    "https://127.0.0.1:$API_PORT/readyz"

  start kube-controller-manager "$kube/kube-controller-manager" --kubeconfig "$STATE/admin.kubeconfig" \
    --controllers '*,-nodeipam,-nodelifecycle,-serviceaccount-token' --leader-elect=false --secure-port 0 \
    --root-ca-file "$STATE/pki/ca.crt" --cluster-signing-cert-file "$STATE/pki/ca.crt" \
    --cluster-signing-key-file "$STATE/pki/ca.key" --use-service-account-credentials=false \
    --kube-api-qps 500 --kube-api-burst 1000 --concurrent-deployment-syncs 25 --concurrent-replicaset-syncs 25
  start kube-scheduler "$kube/kube-scheduler" --kubeconfig "$STATE/admin.kubeconfig" --leader-elect=false --secure-port 0 \
    --kube-api-qps 500 --kube-api-burst 1000

  local stages=(
    "$kwokdir/stages/node/fast/node-initialize.yaml"
    "$kwokdir/stages/pod/fast/pod-ready.yaml" "$kwokdir/stages/pod/fast/pod-complete.yaml"
    "$kwokdir/stages/pod/fast/pod-delete.yaml"
    "$kwokdir/stages/pod/chaos/pod-container-running-failed.yaml"
    "$kwokdir/stages/pod/chaos/pod-init-container-running-failed.yaml"
  )
  local cfg=()
  local s
  for s in "${stages[@]}"; do cfg+=(-c "$s"); done
  start kwok "$kwokdir/kwok" --kubeconfig "$STATE/admin.kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr 10.244.0.0/16 --node-ip 127.0.0.1 "${cfg[@]}"

  local kc=("$kube/kubectl" --kubeconfig "$STATE/admin.kubeconfig")
  local n
  for n in 1 2; do
    cat <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$n
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$n, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
---
NODE
  done >"$STATE/nodes.yaml"
  cat >>"$STATE/nodes.yaml" <<RBAC
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: slipway-limited-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "slipway:limited"}
RBAC
  wait_for "default clusterroles" 30 "${kc[@]}" get clusterrole view
  "${kc[@]}" apply -f "$STATE/nodes.yaml" >/dev/null
  wait_for "kwok nodes" 60 "${kc[@]}" wait --for=condition=Ready node --all --timeout=1s
  # Admission taints new nodes not-ready, and with the node lifecycle controller off nothing
  # lifts the taint: lift it here, or every pod stays Pending.
  "${kc[@]}" taint nodes -l type=kwok node.kubernetes.io/not-ready:NoSchedule- >/dev/null
  wait_for "default service account" 60 "${kc[@]}" get serviceaccount default -n default
}

start_registries() {
  REG_USER=slipway REG_PASSWORD=$(openssl rand -hex 12)
  printf '%s' "$REG_PASSWORD" >"$STATE/registry-auth.password"
  htpasswd -Bbn "$REG_USER" "$REG_PASSWORD" >"$STATE/htpasswd" 2>/dev/null
  registry_config "$STATE/registry.yaml" "$REG_PORT" "$STATE/registry"
  registry_config "$STATE/registry-auth.yaml" "$REG_AUTH_PORT" "$STATE/registry-auth" "$STATE/htpasswd"
  start registry docker-registry serve "$STATE/registry.yaml"
  start registry-auth docker-registry serve "$STATE/registry-auth.yaml"
  wait_for registry 30 curl -sf "http://127.0.0.1:$REG_PORT/v2/"
  wait_for registry-auth 30 sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$REG_AUTH_PORT/v2/ | grep -q 401"
  "$STATE/bin/pushbase" -ref "127.0.0.1:$REG_PORT/base/busybox:1" >/dev/null
  "$STATE/bin/pushbase" -ref "127.0.0.1:$REG_AUTH_PORT/base/busybox:1" -user "$REG_USER" \
    -password-file "$STATE/registry-auth.password" >/dev/null
}

start_git() {
  GIT_USER=slipway GIT_PASSWORD=$(openssl rand -hex 12)
  printf '%s' "$GIT_PASSWORD" >"$STATE/git.password"
  mkdir -p "$STATE/git"
  start gitserver "$STATE/bin/gitserver" -addr "127.0.0.1:$GIT_PORT" -root "$STATE/git" \
    -user "$GIT_USER" -password-file "$STATE/git.password"
  wait_for gitserver 30 curl -sf -u "$GIT_USER:$GIT_PASSWORD" "http://127.0.0.1:$GIT_PORT/healthz"
}

# start_mailpit runs Mailpit with a certificate from the environment's CA for 127.0.0.1 and
# one SMTP user, requiring STARTTLS, so mail is only ever sent encrypted and authenticated.
start_mailpit() {
  local mp; mp=$(tool_dir mailpit "$MAILPIT_VERSION")
  [ -x "$mp/mailpit" ] || die "mailpit $MAILPIT_VERSION is not built; run hack/build-tools.sh mailpit"
  local pki="$STATE/pki"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=mailpit" \
    -keyout "$pki/smtp.key" -out "$pki/smtp.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$pki/smtp.ext"
  openssl x509 -req -in "$pki/smtp.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/smtp.ext" -out "$pki/smtp.crt" 2>/dev/null
  SMTP_USER=slipway SMTP_PASSWORD=$(openssl rand -hex 12)
  htpasswd -Bbn "$SMTP_USER" "$SMTP_PASSWORD" >"$STATE/smtp-auth" 2>/dev/null
  mkdir -p "$STATE/mailpit"
  start mailpit "$mp/mailpit" --database "$STATE/mailpit/mailpit.db" \
    --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
    --smtp-tls-cert "$pki/smtp.crt" --smtp-tls-key "$pki/smtp.key" --smtp-require-starttls \
    --smtp-auth-file "$STATE/smtp-auth" --smtp-disable-rdns --quiet
  wait_for mailpit 30 curl -sf "http://127.0.0.1:$MAILPIT_PORT/api/v1/info"
}

start_buildkit() {
  cat >"$STATE/buildkitd.toml" <<TOML
root = "$STATE/buildkit"
[worker.oci]
  enabled = true
  snapshotter = "native"
  platforms = ["linux/amd64"]
[worker.containerd]
  enabled = false
[registry."127.0.0.1:$REG_PORT"]
  http = true
[registry."127.0.0.1:$REG_AUTH_PORT"]
  http = true
TOML
  local bk; bk=$(tool_dir buildkit "$BUILDKIT_VERSION")
  start buildkitd "$bk/buildkitd" --config "$STATE/buildkitd.toml" --addr "tcp://127.0.0.1:$BUILDKIT_PORT"
  wait_for buildkitd 60 "$bk/buildctl" --addr "tcp://127.0.0.1:$BUILDKIT_PORT" debug workers
}

gitea_config() {
  local run_user=$GITEA_RUN_AS
  [ "$(id -u)" = 0 ] || run_user=$(id -un)
  cat <<INI
APP_NAME = Slipway test forge
RUN_USER = $run_user
RUN_MODE = prod
WORK_PATH = $GITEA_DIR

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = $GITEA_PORT
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:$GITEA_PORT/
STATIC_ROOT_PATH = $GITEA_DIR/static
APP_DATA_PATH = $GITEA_DIR/data
OFFLINE_MODE = true
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = $GITEA_DIR/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = $GITEA_DIR/repos

[security]
INSTALL_LOCK = true
SECRET_KEY = $(openssl rand -hex 32)
INTERNAL_TOKEN = $(openssl rand -hex 32)
; letters and digits only in generated passwords, which go into a shell-sourced file
PASSWORD_COMPLEXITY = off

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true

[mailer]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = $GITEA_DIR/log

; Webhooks may reach daemons on loopback. A push is delivered through two queues
; (push_update, then webhook_sender). They are in memory ("channel"): the default "level"
; queue polls an idle queue with a backoff of up to 2 s, a channel hands an item over at
; once. BATCH_LENGTH = 1 dispatches each item at once instead of waiting 100 ms for a batch.
[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 5

[queue]
TYPE = channel
BATCH_LENGTH = 1

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[session]
PROVIDER = memory

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false
INI
}

# setup_gitea configures Gitea in its own folder owned by the user it runs as, migrates its
# database, creates the admin user with a random password and an API token, and starts it.
# It runs in the background while the control plane starts; the credentials land in
# $STATE/gitea.credentials (0600) for write_envfile.
setup_gitea() {
  local dist; dist=$(tool_dir gitea "$GITEA_VERSION")
  [ -x "$dist/gitea" ] || die "gitea $GITEA_VERSION is not built; run hack/build-tools.sh gitea"
  if [ "$(id -u)" = 0 ]; then
    id "$GITEA_RUN_AS" >/dev/null 2>&1 || die "user $GITEA_RUN_AS is missing; run hack/prereqs.sh as root"
    install -d -m 0700 -o "$GITEA_RUN_AS" -g "$GITEA_RUN_AS" "$GITEA_DIR"
  else
    install -d -m 0700 "$GITEA_DIR"
  fi
  # The binary and its static files under the Gitea folder (hard links when the cache is on
  # the same file system): the cache under root's home is not readable by Gitea's user.
  mkdir -p "$GITEA_DIR/bin"
  ln -f "$dist/gitea" "$GITEA_DIR/bin/gitea" 2>/dev/null || cp "$dist/gitea" "$GITEA_DIR/bin/gitea"
  cp -al "$dist/static" "$GITEA_DIR/static" 2>/dev/null || { rm -rf "$GITEA_DIR/static"; cp -a "$dist/static" "$GITEA_DIR/static"; }
  (umask 077; gitea_config >"$GITEA_DIR/app.ini")
  mkdir -p "$GITEA_DIR/data" "$GITEA_DIR/repos" "$GITEA_DIR/log"
  if [ "$(id -u)" = 0 ]; then
    chown "$GITEA_RUN_AS:" "$GITEA_DIR/app.ini" "$GITEA_DIR/data" "$GITEA_DIR/repos" "$GITEA_DIR/log"
  fi
  # As the user Gitea runs as, with its own HOME. setpriv and env exec (no fork), so the PID
  # recorded for `gitea web` is Gitea's own, whose command line names $STATE.
  local gitea=(env HOME="$GITEA_DIR" "$GITEA_DIR/bin/gitea" --config "$GITEA_DIR/app.ini" --work-path "$GITEA_DIR")
  [ "$(id -u)" != 0 ] || gitea=(setpriv --reuid="$GITEA_RUN_AS" --regid="$GITEA_RUN_AS" --init-groups "${gitea[@]}")
  "${gitea[@]}" migrate >"$STATE/logs/gitea-setup.log" 2>&1
  # The random password and the token are printed once on stdout: keep them out of logs.
  local out password token
  out=$(cd "$GITEA_DIR" && "${gitea[@]}" admin user create --username "$GITEA_ADMIN" \
    --email "$GITEA_ADMIN@example.com" --admin --random-password --random-password-length 24 \
    --must-change-password=false --access-token --access-token-name testenv --access-token-scopes all \
    2>>"$STATE/logs/gitea-setup.log")
  password=$(printf '%s\n' "$out" | sed -n "s/^generated random password is '\(.*\)'\$/\1/p")
  token=$(printf '%s\n' "$out" | sed -n 's/^Access token was successfully created\.\.\. \(.*\)$/\1/p')
  [ -n "$password" ] && [ -n "$token" ] || die "gitea admin user create printed no password or token; see $STATE/logs/gitea-setup.log"
  (umask 077; printf 'GITEA_PASSWORD=%s\nGITEA_TOKEN=%s\n' "$password" "$token" >"$STATE/gitea.credentials")
  (cd "$GITEA_DIR" && start gitea "${gitea[@]}" web)
  wait_for gitea 60 curl -sf "http://127.0.0.1:$GITEA_PORT/api/v1/version"
}

# start_postgres makes a fresh cluster in $STATE/postgres (owned by the user it runs as:
# PostgreSQL refuses to run as root), the superuser slipway with a random password, and the
# database slipway_test, and starts the server on 127.0.0.1:$PG_PORT.
start_postgres() {
  local bin dir=$STATE/postgres run=()
  bin=$(postgres_bin) || die "PostgreSQL's server binaries are missing; run hack/prereqs.sh as root (apt-get install postgresql)"
  PG_PASSWORD=$(openssl rand -hex 16)
  if [ "$(id -u)" = 0 ]; then
    id "$POSTGRES_RUN_AS" >/dev/null 2>&1 || die "user $POSTGRES_RUN_AS is missing; run hack/prereqs.sh as root"
    install -d -m 0700 -o "$POSTGRES_RUN_AS" -g "$POSTGRES_RUN_AS" "$dir"
    run=(setpriv --reuid="$POSTGRES_RUN_AS" --regid="$POSTGRES_RUN_AS" --init-groups env HOME="$dir")
  else
    install -d -m 0700 "$dir"
  fi
  (umask 077; printf '%s\n' "$PG_PASSWORD" >"$dir/pwfile")
  [ "$(id -u)" != 0 ] || chown "$POSTGRES_RUN_AS:" "$dir/pwfile"
  "${run[@]}" "$bin/initdb" -D "$dir/data" -U slipway --pwfile="$dir/pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$STATE/logs/postgres-setup.log" 2>&1 || die "initdb failed; see $STATE/logs/postgres-setup.log"
  rm -f "$dir/pwfile"
  # A throwaway test database: durability is traded for speed, as etcd's --unsafe-no-fsync.
  start postgres "${run[@]}" "$bin/postgres" -D "$dir/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$dir" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=200
  wait_for postgres 60 "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
  # The password through the environment, not the command line, where ps would show it.
  PGPASSWORD=$PG_PASSWORD "$bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U slipway -d postgres \
    -c 'CREATE DATABASE slipway_test' \
    >>"$STATE/logs/postgres-setup.log" 2>&1 || die "creating the test database failed; see $STATE/logs/postgres-setup.log"
}

write_envfile() {
  local kube; kube=$(tool_dir kube "$K8S_VERSION")
  # It holds passwords and tokens: readable by its owner only.
  (umask 077; : >"$ENVFILE.tmp")
  cat >"$ENVFILE.tmp" <<ENV
# Written by hack/env-up.sh; removed by hack/env-down.sh. Source it: . .slipway/testenv.env
export SLIPWAY_ENV_DIR=$STATE
export KUBECONFIG=$STATE/admin.kubeconfig
export SLIPWAY_KUBECONFIG_LIMITED=$STATE/limited.kubeconfig
export SLIPWAY_API_PORT=$API_PORT
export SLIPWAY_REGISTRY=127.0.0.1:$REG_PORT
export SLIPWAY_REGISTRY_AUTH=127.0.0.1:$REG_AUTH_PORT
export SLIPWAY_REGISTRY_USER=$REG_USER
export SLIPWAY_REGISTRY_PASSWORD=$REG_PASSWORD
export SLIPWAY_GIT_URL=http://127.0.0.1:$GIT_PORT
export SLIPWAY_GIT_ROOT=$STATE/git
export SLIPWAY_GIT_USER=$GIT_USER
export SLIPWAY_GIT_PASSWORD=$GIT_PASSWORD
export SLIPWAY_GITEA_URL=http://127.0.0.1:$GITEA_PORT
export SLIPWAY_GITEA_USER=$GITEA_ADMIN
export SLIPWAY_GITEA_PASSWORD=$GITEA_PASSWORD
export SLIPWAY_GITEA_TOKEN=$GITEA_TOKEN
export SLIPWAY_SMTP_ADDR=127.0.0.1:$SMTP_PORT
export SLIPWAY_SMTP_USER=$SMTP_USER
export SLIPWAY_SMTP_PASSWORD=$SMTP_PASSWORD
export SLIPWAY_SMTP_CA=$STATE/pki/ca.crt
export SLIPWAY_MAILPIT_URL=http://127.0.0.1:$MAILPIT_PORT
export BUILDKIT_HOST=tcp://127.0.0.1:$BUILDKIT_PORT
export SLIPWAY_BASE_IMAGE=127.0.0.1:$REG_PORT/base/busybox:1
export SLIPWAY_KUBECTL=$kube/kubectl
export SLIPWAY_BUILDCTL=$(tool_dir buildkit "$BUILDKIT_VERSION")/buildctl
export SLIPWAY_KWOK_STAGES=$(tool_dir kwok "$KWOK_VERSION")/stages
export SLIPWAY_REAL_NODE=$REAL_NODE
export SLIPWAY_REAL_NODE_TAINT=$REAL_NODE_TAINT
export SLIPWAY_REAL_NODE_HEALTHZ=http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz
export SLIPWAY_POSTGRES_PORT=$PG_PORT
export SLIPWAY_POSTGRES_URL=postgres://slipway:$PG_PASSWORD@127.0.0.1:$PG_PORT/slipway_test?sslmode=disable
export SLIPWAY_ENV_PIDS="${PIDS[*]}"
export PATH=$kube:\$PATH
ENV
  mv "$ENVFILE.tmp" "$ENVFILE"
}

GITEA_SETUP_PID=
on_exit() {
  [ "$1" != 0 ] || return 0
  log "env-up failed; stopping what it started"
  [ -z "$GITEA_SETUP_PID" ] || wait "$GITEA_SETUP_PID" 2>/dev/null || true
  "$HACK/env-down.sh" --locked
}

main() {
  # One environment per checkout: concurrent callers (several test binaries) wait here.
  exec 9>"$ROOT/.slipway/env.lock"
  flock 9
  # With every process running, a slow answer means a loaded machine, not a dead
  # environment: give it time before tearing down what other test binaries use.
  local tries=1 i
  alive && tries=15
  for ((i = 1; i <= tries; i++)); do
    if healthy; then
      log "reusing the running environment in $ENVFILE"
      return 0
    fi
    [ "$i" = "$tries" ] || sleep 2
  done
  if [ -f "$ENVFILE" ] || [ -d "$STATE" ]; then
    log "found a stale environment; stopping it first"
    "$HACK/env-down.sh" --locked
  fi
  "$HACK/prereqs.sh"
  local p
  realnode_vars
  for p in $ETCD_PORT $ETCD_PEER_PORT $API_PORT $REG_PORT $REG_AUTH_PORT $GIT_PORT $BUILDKIT_PORT $GITEA_PORT \
    $SMTP_PORT $MAILPIT_PORT $PG_PORT $KUBELET_PORT $KUBELET_HEALTHZ_PORT; do
    port_free "$p" || die "port $p is in use; set SLIPWAY_ENV_PORT_BASE to another base (now $BASE)"
  done
  local started=$SECONDS
  mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/bin"
  (cd "$ROOT" && go build -o "$STATE/bin/gitserver" ./hack/gitserver && go build -o "$STATE/bin/pushbase" ./hack/pushbase)
  # A failed start must not leave half an environment running. An EXIT trap, since an ERR
  # trap misses failures inside functions and `die`. Gitea's setup may still be starting
  # Gitea in the background: wait for it first.
  trap 'on_exit $?' EXIT
  # Gitea's setup (a few seconds, mostly its database migration) overlaps the control plane's.
  setup_gitea &
  GITEA_SETUP_PID=$!
  make_pki
  start_postgres
  start_control_plane
  start_registries
  start_real_node
  start_git
  start_buildkit
  start_mailpit
  wait "$GITEA_SETUP_PID"
  GITEA_SETUP_PID=
  PIDS+=("$(cat "$STATE/pids/gitea")")
  wait_real_node
  local GITEA_PASSWORD GITEA_TOKEN
  . "$STATE/gitea.credentials"
  rm -f "$STATE/gitea.credentials" # from here on, only in $ENVFILE
  write_envfile
  trap - EXIT
  log "environment up in $((SECONDS - started))s: . $ENVFILE"
}

# shellcheck disable=SC2034 # versions are read by build-tools.sh too
. "$HACK/versions.sh"
. "$HACK/realnode.sh"
GITEA_DIR=$STATE/gitea GITEA_ADMIN=slipway
main "$@"
