package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// DemoDir holds the running demo's state: its lab, the agent's files and log.
const DemoDir = "/var/lib/astara-lab"

const demoAPIPort = 5000

// Up builds a lab, starts the appliance agent in it, configures it as the
// orchestrator would, and shows with real traffic that it routes, NATs and
// serves DHCP. Everything keeps running; Down removes it.
func Up(ctx context.Context, agent string, out io.Writer) error {
	if _, err := os.Stat(filepath.Join(DemoDir, "lab.json")); err == nil {
		return fmt.Errorf("a lab is already running (see %s); stop it first", DemoDir)
	}
	step := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	start := time.Now()
	step("building namespaces: appliance, upstream, vm1, vm2")
	l, err := New(ctx)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			l.Close()
			os.RemoveAll(DemoDir)
		}
	}()
	if err := os.MkdirAll(DemoDir, 0o755); err != nil {
		return err
	}
	if err := saveLab(l); err != nil {
		return err
	}

	step("starting astara-appliance in namespace %s (management address %s)", l.Appliance, l.ApplianceMgmt.Addr())
	logPath := filepath.Join(DemoDir, "appliance.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command("ip", "netns", "exec", l.Appliance, agent,
		"-mgmt-mac", MgmtMAC, "-mgmt-address", l.ApplianceMgmt.String(),
		"-state-dir", filepath.Join(DemoDir, "appliance"), "-port", fmt.Sprint(demoAPIPort),
		"-probe-v4", Internet.String(), "-probe-v6", ExtV6Gateway.String())
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the agent: %w", err)
	}
	_ = cmd.Process.Release()
	api := l.APIURL(demoAPIPort)
	client := &http.Client{Timeout: 30 * time.Second}
	if err := waitUntil(ctx, 30*time.Second, func() bool {
		resp, err := client.Get(api + "/v1/firewall/rules")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}); err != nil {
		return fmt.Errorf("the agent did not answer (log: %s): %w", logPath, err)
	}

	doc := l.Document(9697)
	doc.Generation = 1
	body, _ := json.Marshal(doc)
	req, _ := http.NewRequestWithContext(ctx, "PUT", api+"/v1/system/config", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("PUT /v1/system/config: %w", err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("PUT /v1/system/config: %d %s", resp.StatusCode, reply)
	}
	step("router configured in %v: external %s, tenant networks %s and %s, floating IP %s -> %s",
		time.Since(t0).Round(time.Millisecond), RouterExt, Int1CIDR, Int2CIDR, FloatingIP, VM1IP)

	for _, vm := range []string{l.VM1, l.VM2} {
		lease, err := l.DHCP(ctx, vm, filepath.Join(DemoDir, vm))
		if err != nil {
			return err
		}
		step("%s got its DHCP lease from the appliance's dnsmasq: %s/%s via %s", vm, lease.IP, lease.Mask, lease.Routers)
	}

	echo, err := Echo(l.Upstream, netip.AddrPortFrom(Internet, 0).String())
	if err != nil {
		return err
	}
	defer echo.Close()
	internet := netip.AddrPortFrom(Internet, uint16(echo.Addr().(*net.TCPAddr).Port)).String()
	check, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seen, err := SeenAs(check, l.VM2, internet)
	if err != nil {
		return err
	}
	step("vm2 -> %s (upstream): seen there as %s, the router's external address (SNAT)", Internet, seen)
	if seen, err = SeenAs(check, l.VM1, internet); err != nil {
		return err
	}
	step("vm1 -> %s (upstream): seen there as %s, its floating IP", Internet, seen)
	vmEcho, err := Echo(l.VM1, ":8080")
	if err != nil {
		return err
	}
	defer vmEcho.Close()
	if seen, err = SeenAs(check, l.Upstream, netip.AddrPortFrom(FloatingIP, 8080).String()); err != nil {
		return err
	}
	step("upstream -> %s:8080 (floating IP) reached vm1, which saw the client as %s", FloatingIP, seen)
	ok = true
	fmt.Fprintf(out, `
Astara appliance lab running (%v). Inspect it:
  curl -s %s/v1/system/interfaces
  curl -s %s/v1/firewall/rules
  ip netns exec %s nft list ruleset
  ip netns exec %s ping -c1 %s
  less %s
Stop it and remove everything it created:
  ./scripts/quickstart.sh stop
`, time.Since(start).Round(time.Millisecond), bracketURL(api), bracketURL(api), l.Appliance, l.VM1, Internet, logPath)
	return nil
}

// Down stops the demo lab and removes everything it created.
func Down(out io.Writer) error {
	l, err := loadLab()
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(out, "no lab running")
		return nil
	}
	if err != nil {
		return err
	}
	l.Close()
	if err := os.RemoveAll(DemoDir); err != nil {
		return err
	}
	fmt.Fprintf(out, "lab %s stopped: namespaces, links, processes and %s removed\n", l.ID, DemoDir)
	return nil
}

func bracketURL(s string) string { return "'" + s + "'" }

func saveLab(l *Lab) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(DemoDir, "lab.json"), b, 0o644)
}

func loadLab() (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(DemoDir, "lab.json"))
	if err != nil {
		return nil, err
	}
	var l Lab
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("%s/lab.json: %w", DemoDir, err)
	}
	return &l, nil
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
