#!/usr/bin/env bash
# Builds Astara and runs a real router appliance in network namespaces on
# this machine: two VMs get DHCP leases from it, reach an upstream host
# through its NAT, and one is reachable through a floating IP. It keeps
# running; "./scripts/quickstart.sh stop" removes everything it created.
# Run as root on Debian; it installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

if [ "${1:-}" = "stop" ]; then
	exec ./bin/astara-lab down
fi
ensure_packages iproute2 nftables conntrack dnsmasq-base bird2 isc-dhcp-client iputils-ping procps curl
ensure_go
mkdir -p bin
go build -o bin/ ./cmd/astara-appliance ./cmd/astara-lab ./cmd/astara-bench
exec ./bin/astara-lab up -agent "$PWD/bin/astara-appliance"
