# Shared shell helpers for hack/ scripts. Sourced, not run.
SLIPWAY_CACHE_DIR=${SLIPWAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/slipway}
export SLIPWAY_CACHE_DIR

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# tool_dir NAME VERSION prints (and creates) the cache folder for one pinned tool.
tool_dir() {
  local d="$SLIPWAY_CACHE_DIR/bin/$1-$2"
  mkdir -p "$d"
  echo "$d"
}

# Gitea refuses to run as root: when the environment is started by root it runs as this
# plain user (hack/prereqs.sh creates it), otherwise as the user starting it.
GITEA_RUN_AS=slipway-gitea
# PostgreSQL refuses to run as root too: as root, the test environment's server runs as the
# user Debian's postgresql package creates.
POSTGRES_RUN_AS=postgres

# postgres_bin prints the folder of the newest PostgreSQL server binaries Debian installed.
postgres_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/postgres" ] || return 1
  echo "$d"
}
