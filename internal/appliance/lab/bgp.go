package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// upstreamBird is the upstream router's side of the BGP session: it learns
// the tenant prefixes the appliance announces and installs them in the
// upstream namespace's kernel, so that IPv6 replies find their way back.
const upstreamBird = `router id %[1]s;
protocol device { scan time 10; }
protocol direct { ipv6; interface "up0"; }
protocol kernel { ipv6 { import none; export where source = RTS_BGP; }; }
protocol bgp appliance {
	local as 64512;
	neighbor %[2]s as 64512;
	interface "up0";
	direct;
	ipv6 { import all; export none; gateway direct; };
}
`

// StartUpstreamBGP runs a BIRD in the upstream namespace peering with the
// appliance's external IPv6 address; it stops when the lab closes.
func (l *Lab) StartUpstreamBGP(ctx context.Context, dir string) (socket string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "bird-upstream.conf")
	socket = filepath.Join(dir, "bird-upstream.ctl")
	body := fmt.Sprintf(upstreamBird, ExtGateway, RouterExtV6.Addr())
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", l.Upstream, "bird",
		"-c", conf, "-s", socket, "-P", filepath.Join(dir, "bird-upstream.pid")).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("starting the upstream BIRD: %w: %s", err, out)
	}
	return socket, nil
}
