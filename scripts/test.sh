#!/usr/bin/env bash
# Runs every test of the repository: unit tests, the integration tests in
# real network namespaces with real dnsmasq, BIRD and nftables, and the tests
# against a real Neutron server (Debian's neutron-server, with MariaDB and
# RabbitMQ, started by scripts/neutron.sh). Run it as root on Debian; it
# installs what the tests need first. Arguments go to go test.
#
# The Neutron server, MariaDB and RabbitMQ it starts are stopped at the end;
# ASTARA_KEEP_NEUTRON=1 leaves them running for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages iproute2 nftables iptables conntrack dnsmasq-base bird2 \
	isc-dhcp-client iputils-ping procps rabbitmq-server python3-openstackclient
ensure_go

# The real Neutron server. Its bring-up time is printed: on a fresh machine
# most of it is installing the packages.
t0=$(date +%s.%N)
neutron_was_up=0
scripts/neutron.sh status >/dev/null 2>&1 && neutron_was_up=1
ASTARA_NEUTRON_URL=$(NEUTRON_AUTH=headers scripts/neutron.sh)
echo "Neutron bring-up: $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') s ($ASTARA_NEUTRON_URL)"
if [ "$neutron_was_up" = 0 ] && [ "${ASTARA_KEEP_NEUTRON:-0}" != 1 ]; then
	trap 'scripts/neutron.sh stop >/dev/null 2>&1 || true' EXIT
fi
export ASTARA_NEUTRON_URL ASTARA_NEUTRON_AUTH=headers ASTARA_NEUTRON_REQUIRED=1
export ASTARA_NEUTRON_TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/

go vet ./...
go test -race -count=1 -timeout 25m "$@" ./...
