#!/usr/bin/env bash
# neutron.sh: bring up a REAL OpenStack Neutron API server (Debian's
# neutron-server, OpenStack Zed) without Keystone, backed by MariaDB, publishing
# real oslo.messaging notifications to a local RabbitMQ. Unattended and
# idempotent. The tests (scripts/test.sh) run the network API contract suite and
# the OpenStack end-to-end test against it; operators can use it to try the
# orchestrator's OpenStack mode on one machine (see README.md).
#
# Adapted from the project's Neutron feasibility recipe: the tenant-aware
# "headers" mode is the default here, and the state lives in
# /var/lib/astara-neutron.
#
#   sudo scripts/neutron.sh          # install (if needed) + start everything, print the API URL
#   sudo scripts/neutron.sh status   # show PIDs / health, exit 0 only if the API answers
#   sudo scripts/neutron.sh stop     # stop neutron-server, and MariaDB and RabbitMQ if started here
#
# Environment knobs (all optional):
#   NEUTRON_AUTH=headers|noauth  noauth: stock Neutron noauth pipeline; every
#                                request is admin in project 'fake_project_id', other
#                                projects via "project_id" in the request body.
#                                headers (default): no Keystone either, but the request context is
#                                built from X-User-Id / X-Project-Id / X-Roles headers
#                                (keystonecontext middleware without authtoken), so
#                                tenant-vs-admin policy is really enforced.
#   NEUTRON_PORT=9696            API port (always bound to 127.0.0.1)
#   NEUTRON_CI_DIR=/var/lib/astara-neutron   config, logs, pid files
#   NEUTRON_RESET_DB=1           drop and re-create the neutron database first
#   NEUTRON_API_WORKERS=1        api_workers
#   NEUTRON_START_TIMEOUT=120    seconds to wait for the API
# Only processes whose PIDs this script recorded are ever stopped.
set -euo pipefail

NEUTRON_AUTH=${NEUTRON_AUTH:-headers}
NEUTRON_PORT=${NEUTRON_PORT:-9696}
NEUTRON_CI_DIR=${NEUTRON_CI_DIR:-/var/lib/astara-neutron}
NEUTRON_API_WORKERS=${NEUTRON_API_WORKERS:-1}
NEUTRON_START_TIMEOUT=${NEUTRON_START_TIMEOUT:-120}
NEUTRON_RESET_DB=${NEUTRON_RESET_DB:-0}
ETC=$NEUTRON_CI_DIR/etc
LOG=$NEUTRON_CI_DIR/log
RUN=$NEUTRON_CI_DIR/run
API_URL=http://127.0.0.1:$NEUTRON_PORT
TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/
DB_URL=mysql+pymysql://neutron:neutron@127.0.0.1/neutron?charset=utf8
export DEBIAN_FRONTEND=noninteractive
T_START=$(date +%s.%N)
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
log()  { printf '[neutron %6ss] %s\n' "$(since "$T_START")" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$RUN/$1.pid" ] && cat "$RUN/$1.pid" || true; }

[ "$(id -u)" = 0 ] || die "must run as root"

api_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$API_URL/v2.0/networks" \
           -H 'X-User-Id: probe' -H 'X-Project-Id: probe' -H 'X-Roles: admin')" = 200 ]; }

# ----------------------------------------------------------------------------- stop/status
if [ "${1:-up}" = stop ]; then
  for svc in neutron-server; do
    p=$(pid_of $svc)
    if alive "$p"; then log "stopping $svc (pid $p)"; kill "$p"
      for _ in $(seq 1 40); do alive "$p" || break; sleep 0.5; done
      alive "$p" && kill -9 "$p"
    fi
    rm -f "$RUN/$svc.pid"
  done
  if [ -e "$RUN/mariadb.started-here" ]; then log "stopping MariaDB"; /etc/init.d/mariadb stop || true; rm -f "$RUN/mariadb.started-here"; fi
  if [ -e "$RUN/rabbitmq.started-here" ]; then log "stopping RabbitMQ"; rabbitmqctl -q stop || true
    for _ in $(seq 1 20); do epmd -names >/dev/null 2>&1 || break; epmd -kill >/dev/null 2>&1 || true; sleep 0.5; done
    rm -f "$RUN/rabbitmq.started-here"; fi
  exit 0
fi
if [ "${1:-up}" = status ]; then
  echo "neutron-server pid: $(pid_of neutron-server)"
  echo "rabbitmq (beam) pid: $(cat /var/lib/rabbitmq/mnesia/rabbit@$(hostname -s).pid 2>/dev/null || echo '?')"
  echo "mariadb pid: $(cat /run/mysqld/mysqld.pid 2>/dev/null || echo '?')"
  api_ok && { echo "API: $API_URL (up)"; exit 0; } || { echo "API: $API_URL (DOWN)"; exit 1; }
fi
[ "${1:-up}" = up ] || die "usage: $0 [up|status|stop]"

# ----------------------------------------------------------------------------- 1. packages
PKGS="rabbitmq-server mariadb-server neutron-server curl"
missing=""
for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
  log "installing:$missing"
  # The Debian OpenStack packaging asks (via debconf) whether to configure the DB
  # (dbconfig-common), RabbitMQ, keystone_authtoken, nova credentials and the
  # Keystone endpoint.  All default to false; pre-seed them anyway so nothing prompts.
  debconf-set-selections <<'EOF'
neutron-common neutron/configure_db boolean false
neutron-common neutron/configure_rabbit boolean false
neutron-common neutron/configure_ksat boolean false
neutron-common neutron/configure_nova boolean false
neutron-api neutron/configure_api-endpoint boolean false
EOF
  # Keep maintainer scripts from starting services (we start them ourselves).
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt_q() { apt-get -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; }
  # Fresh lists: an old list may name .debs the mirror no longer has.
  apt-get update -q >/dev/null 2>&1 || log "apt-get update failed; trying the lists already here"
  apt_q install $missing > "/tmp/astara-neutron-apt.log" 2>&1 \
    || { tail -30 /tmp/astara-neutron-apt.log >&2; die "apt-get install failed"; }
  [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; trap - EXIT
  log "packages installed"
else
  log "packages already installed"
fi

mkdir -p "$ETC" "$LOG" "$RUN"
chown root:neutron "$ETC"; chmod 750 "$ETC"
chown neutron:neutron "$LOG"

# ----------------------------------------------------------------------------- 2. RabbitMQ
# Loopback only: AMQP (5672), Erlang distribution (25672) and epmd (4369).
if ! grep -q '^# astara neutron.sh: loopback only' /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null; then
  cat >> /etc/rabbitmq/rabbitmq-env.conf <<'EOF'
# astara neutron.sh: loopback only
NODE_IP_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
EOF
fi
if rabbitmqctl -q status >/dev/null 2>&1; then
  log "RabbitMQ already running"
else
  log "starting RabbitMQ"
  (cd /var/lib/rabbitmq && rabbitmq-server -detached) >/dev/null 2>&1 || true
  touch "$RUN/rabbitmq.started-here"
  ok=0; for _ in $(seq 1 120); do rabbitmqctl -q status >/dev/null 2>&1 && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || { tail -20 /var/log/rabbitmq/*.log >&2 || true; die "RabbitMQ did not start"; }
  rabbitmqctl -q await_startup >/dev/null 2>&1 || true
  log "RabbitMQ up"
fi
# oslo.messaging declares a 'notifications.<priority>' queue per priority so that no
# notification is lost; nobody consumes it here, so cap it.
rabbitmqctl -q set_policy --apply-to queues cap-notifications '^notifications\.' \
  '{"max-length":10000}' >/dev/null

# ----------------------------------------------------------------------------- 3. MariaDB
if mysqladmin ping >/dev/null 2>&1; then
  log "MariaDB already running"
else
  log "starting MariaDB"
  /etc/init.d/mariadb start >/dev/null 2>&1 || true   # sysv script: works without systemd
  touch "$RUN/mariadb.started-here"
  ok=0; for _ in $(seq 1 120); do mysqladmin ping >/dev/null 2>&1 && { ok=1; break; }; sleep 0.5; done
  [ $ok = 1 ] || die "MariaDB did not start"
  log "MariaDB up"
fi
if [ "$NEUTRON_RESET_DB" = 1 ]; then
  alive "$(pid_of neutron-server)" && die "stop neutron-server before NEUTRON_RESET_DB=1"
  log "dropping neutron database"; mysql -e 'DROP DATABASE IF EXISTS neutron'
fi
mysql <<'EOF'
CREATE DATABASE IF NOT EXISTS neutron CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'neutron'@'localhost' IDENTIFIED BY 'neutron';
CREATE USER IF NOT EXISTS 'neutron'@'127.0.0.1' IDENTIFIED BY 'neutron';
GRANT ALL PRIVILEGES ON neutron.* TO 'neutron'@'localhost';
GRANT ALL PRIVILEGES ON neutron.* TO 'neutron'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF

# ----------------------------------------------------------------------------- 4. config
write() { # write FILE, from stdin, only if changed; returns 0 if changed
  local f=$1 tmp; tmp=$(mktemp); cat > "$tmp"
  if cmp -s "$tmp" "$f" 2>/dev/null; then rm -f "$tmp"; return 1; fi
  install -m 0640 -o root -g neutron "$tmp" "$f"; rm -f "$tmp"; return 0
}
changed=0
write "$ETC/neutron.conf" <<EOF && changed=1 || true
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = $NEUTRON_AUTH
api_paste_config = $ETC/api-paste.ini
bind_host = 127.0.0.1
bind_port = $NEUTRON_PORT
api_workers = $NEUTRON_API_WORKERS
rpc_workers = 1
rpc_state_report_workers = 1
transport_url = $TRANSPORT_URL
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
allow_overlapping_ips = true
state_path = /var/lib/neutron
host = neutron-ci
debug = false

[database]
connection = $DB_URL

[oslo_messaging_notifications]
driver = messagingv2
topics = notifications

[oslo_concurrency]
lock_path = /var/lib/neutron/lock

[oslo_policy]
policy_dirs = /etc/neutron/policy.d

[agent]
root_helper = sudo neutron-rootwrap /etc/neutron/rootwrap.conf
EOF
write "$ETC/ml2_conf.ini" <<'EOF' && changed=1 || true
[ml2]
type_drivers = flat,vlan,vxlan
tenant_network_types = vxlan
mechanism_drivers = openvswitch
extension_drivers = port_security

[ml2_type_flat]
flat_networks = external

[ml2_type_vlan]
network_vlan_ranges = external

[ml2_type_vxlan]
vni_ranges = 1:1000

[securitygroup]
enable_security_group = true
EOF
# Stock Debian api-paste.ini plus a 'headers' pipeline: keystonecontext without
# authtoken, i.e. trust X-User-Id / X-Project-Id / X-Roles headers.
write "$ETC/api-paste.ini" <<'EOF' && changed=1 || true
[composite:neutron]
use = egg:Paste#urlmap
/: neutronversions_composite
/healthcheck: healthcheck
/v2.0: neutronapi_v2_0

[composite:neutronapi_v2_0]
use = call:neutron.auth:pipeline_factory
noauth = cors http_proxy_to_wsgi request_id fake_project_id catch_errors osprofiler extensions neutronapiapp_v2_0
headers = cors http_proxy_to_wsgi request_id catch_errors osprofiler keystonecontext extensions neutronapiapp_v2_0
keystone = cors http_proxy_to_wsgi request_id catch_errors osprofiler authtoken keystonecontext extensions neutronapiapp_v2_0

[composite:neutronversions_composite]
use = call:neutron.auth:pipeline_factory
noauth = cors http_proxy_to_wsgi neutronversions
headers = cors http_proxy_to_wsgi neutronversions
keystone = cors http_proxy_to_wsgi neutronversions

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:catch_errors]
paste.filter_factory = oslo_middleware:CatchErrors.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = neutron

[filter:fake_project_id]
paste.filter_factory = neutron.auth:NoauthFakeProjectId.factory

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware.http_proxy_to_wsgi:HTTPProxyToWSGI.factory

[filter:keystonecontext]
paste.filter_factory = neutron.auth:NeutronKeystoneContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:extensions]
paste.filter_factory = neutron.api.extensions:plugin_aware_extension_middleware_factory

[app:neutronversions]
paste.app_factory = neutron.pecan_wsgi.app:versions_factory

[app:neutronapiapp_v2_0]
paste.app_factory = neutron.api.v2.router:APIRouter.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[app:healthcheck]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
backends = disable_by_file
disable_by_file_path = /etc/neutron/healthcheck_disable
EOF
install -d -o neutron -g neutron /var/lib/neutron/lock

# ----------------------------------------------------------------------------- 5. schema
log "neutron-db-manage upgrade heads"
setpriv --reuid=neutron --regid=neutron --init-groups \
  /usr/bin/neutron-db-manage --config-file "$ETC/neutron.conf" --config-file "$ETC/ml2_conf.ini" \
  upgrade heads > "$LOG/db-manage.log" 2>&1 || { tail -30 "$LOG/db-manage.log" >&2; die "db migration failed"; }

# ----------------------------------------------------------------------------- 6. neutron-server
pid=$(pid_of neutron-server)
if alive "$pid" && [ $changed = 1 ]; then
  log "config changed: restarting neutron-server (pid $pid)"; kill "$pid"
  for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.5; done
  alive "$pid" && kill -9 "$pid"; rm -f "$RUN/neutron-server.pid"; pid=""
fi
if alive "$pid" && api_ok; then
  log "neutron-server already running (pid $pid)"
else
  if alive "$pid"; then log "neutron-server pid $pid alive but API not answering; waiting"; else
    if ss -ltn "sport = :$NEUTRON_PORT" | grep -q LISTEN; then die "port $NEUTRON_PORT already in use by another process"; fi
    log "starting neutron-server"
    T_NS=$(date +%s.%N)
    nohup setsid setpriv --reuid=neutron --regid=neutron --init-groups \
      /usr/bin/neutron-server --config-file "$ETC/neutron.conf" --config-file "$ETC/ml2_conf.ini" \
      --log-file "$LOG/neutron-server.log" >> "$LOG/neutron-server.stdout" 2>&1 < /dev/null &
    pid=$!
    echo "$pid" > "$RUN/neutron-server.pid"
  fi
  ok=0
  for _ in $(seq 1 $((NEUTRON_START_TIMEOUT * 4))); do
    api_ok && { ok=1; break; }
    alive "$pid" || break
    sleep 0.25
  done
  if [ $ok != 1 ]; then
    tail -40 "$LOG/neutron-server.log" "$LOG/neutron-server.stdout" >&2 2>/dev/null || true
    die "neutron-server did not answer on $API_URL"
  fi
  [ -n "${T_NS:-}" ] && log "neutron-server answering after $(since "$T_NS")s (pid $pid)"
fi
log "Neutron ready after $(since "$T_START") s (auth=$NEUTRON_AUTH); notifications: exchange 'neutron' (topic), routing key 'notifications.info' on $TRANSPORT_URL"
echo "$API_URL"
