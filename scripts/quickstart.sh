#!/usr/bin/env bash
# Runs Astara's standalone mode on this machine: the orchestrator serves
# the network API itself and runs each router's appliance in a network
# namespace. It makes an external network, a tenant network, a router,
# two VMs (namespaces) and a floating IP, and shows with real traffic the
# VMs' DHCP leases, SNAT to an upstream host, and the floating IP. It keeps
# running; "./scripts/quickstart.sh stop" removes everything it created.
# Run as root on Debian; it installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

if [ "${1:-}" = "stop" ]; then
	if [ -x ./bin/astara-quickstart ]; then
		exec ./bin/astara-quickstart down
	fi
	echo "nothing to stop (bin/astara-quickstart is not built)"
	exit 0
fi
ensure_packages iproute2 nftables conntrack dnsmasq-base bird2 isc-dhcp-client iputils-ping procps curl
ensure_go
mkdir -p bin
go build -o bin/ ./cmd/...
exec ./bin/astara-quickstart up
