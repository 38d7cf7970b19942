#!/usr/bin/env bash
# Runs every test of the repository: unit tests, and the integration tests in
# real network namespaces with real dnsmasq, BIRD and nftables. Run it as root
# on Debian; it installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/deps.sh

ensure_packages iproute2 nftables iptables conntrack dnsmasq-base bird2 \
	isc-dhcp-client iputils-ping procps rabbitmq-server python3-openstackclient
ensure_go

go vet ./...
go test -race -count=1 -timeout 25m "$@" ./...
