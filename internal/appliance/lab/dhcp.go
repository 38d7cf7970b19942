package lab

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Lease is what a VM's DHCP client was given.
type Lease struct {
	IP, Mask, Routers, DNS, MTU, Hostname string
	// Classless is option 121 as dhclient reports it (dotted octets).
	Classless string
}

// dhclientScript applies a lease to the VM's interface and records it in the
// file named by its format argument. It replaces dhclient-script, which would
// rewrite the host's /etc/resolv.conf. (dhclient gives scripts only its own
// environment, hence the path baked in.)
const dhclientScript = `#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
	ip addr flush dev "$interface" scope global
	ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
	[ -n "$new_interface_mtu" ] && ip link set "$interface" mtu "$new_interface_mtu"
	for r in $new_routers; do ip route replace default via "$r" dev "$interface"; break; done
	env | grep '^new_' > "%[1]s.tmp" && mv "%[1]s.tmp" "%[1]s"
	;;
esac
exit 0
`

const dhclientConf = `timeout 60;
retry 1;
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, domain-name-servers, host-name,
	interface-mtu, rfc3442-classless-static-routes;
`

// DHCP runs a DHCP client on eth0 of namespace ns until it holds a lease,
// applies it (address, MTU, default route) and returns it. dir keeps the
// client's files. The client stays running (it renews) until the lab closes.
func (l *Lab) DHCP(ctx context.Context, ns, dir string) (Lease, error) { return DHCP(ctx, ns, dir) }

// DHCP runs a DHCP client on eth0 of namespace ns until it holds a lease,
// applies it (address, MTU, default route) and returns it. dir keeps the
// client's files. The client stays running (it renews) until whatever runs
// in the namespace is killed (KillNamespace).
func DHCP(ctx context.Context, ns, dir string) (Lease, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Lease{}, err
	}
	script := filepath.Join(dir, "dhclient-script")
	conf := filepath.Join(dir, "dhclient.conf")
	leaseEnv := filepath.Join(dir, "lease.env")
	_ = os.Remove(leaseEnv)
	if err := os.WriteFile(script, []byte(fmt.Sprintf(dhclientScript, leaseEnv)), 0o755); err != nil {
		return Lease{}, err
	}
	if err := os.WriteFile(conf, []byte(dhclientConf), 0o644); err != nil {
		return Lease{}, err
	}
	pidFile := filepath.Join(dir, "dhclient.pid")
	if b, err := os.ReadFile(pidFile); err == nil {
		// A client from an earlier call: release nothing, just stop it.
		_ = Command(ctx, ns, "kill", strings.TrimSpace(string(b))).Run()
	}
	cmd := Command(ctx, ns, "dhclient", "-1", "-4", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(dir, "dhclient.leases"), "-pf", pidFile, "eth0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Lease{}, fmt.Errorf("dhclient in %s: %w: %s", ns, err, out)
	}
	// dhclient -1 returns once bound; the script has written the lease.
	deadline := time.Now().Add(10 * time.Second)
	for {
		lease, err := readLease(leaseEnv)
		if err == nil {
			return lease, nil
		}
		if time.Now().After(deadline) {
			return Lease{}, fmt.Errorf("dhclient in %s bound but recorded no lease: %v (%s)", ns, err, out)
		}
		select {
		case <-ctx.Done():
			return Lease{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func readLease(path string) (Lease, error) {
	f, err := os.Open(path)
	if err != nil {
		return Lease{}, err
	}
	defer f.Close()
	var l Lease
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "new_ip_address":
			l.IP = v
		case "new_subnet_mask":
			l.Mask = v
		case "new_routers":
			l.Routers = v
		case "new_domain_name_servers":
			l.DNS = v
		case "new_interface_mtu":
			l.MTU = v
		case "new_host_name":
			l.Hostname = v
		case "new_rfc3442_classless_static_routes":
			l.Classless = v
		}
	}
	if l.IP == "" {
		return l, fmt.Errorf("no address in %s", path)
	}
	return l, sc.Err()
}
