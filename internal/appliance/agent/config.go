// Package agent runs astara-appliance: it configures the management
// interface, restores the last applied configuration, and serves the REST API
// that the orchestrator drives.
package agent

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/astara-go/astara/internal/appliance/probe"
)

// Config is the agent's configuration, from its command line.
type Config struct {
	// Listen is the API's address; empty means the management address (or
	// every address when there is none) and Port.
	Listen string
	Port   uint16
	// StateDir holds the applied document and the daemons' files.
	StateDir string

	// Management bootstrap: from flags, a user-data file or a config drive.
	MgmtMAC     string
	MgmtAddress string
	MgmtMTU     int
	UserData    string
	ConfigDrive string

	TLSCert, TLSKey, TLSClientCA string

	ProbeV4, ProbeV6 netip.Addr
	DNSUpstream      []netip.Addr
	SSHPort          uint16
	// VM says the agent owns the machine: it then sets the system hostname.
	VM bool

	LogLevel  slog.Level
	LogFormat string
}

// ParseFlags reads the command line. The error names the offending flag.
func ParseFlags(args []string, stderr io.Writer) (Config, error) {
	c := Config{Port: 5000, SSHPort: 22, ProbeV4: probe.DefaultV4, ProbeV6: probe.DefaultV6}
	fs := flag.NewFlagSet("astara-appliance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Listen, "listen", "", "API listen address host[:port] (default: the management address)")
	port := fs.Uint("port", 5000, "API port")
	fs.StringVar(&c.StateDir, "state-dir", "/var/lib/astara-appliance", "directory for the applied configuration and daemon files")
	fs.StringVar(&c.MgmtMAC, "mgmt-mac", "", "MAC of the management interface to configure at start")
	fs.StringVar(&c.MgmtAddress, "mgmt-address", "", "management address/prefix to configure at start")
	fs.IntVar(&c.MgmtMTU, "mgmt-mtu", 0, "MTU of the management interface (0: leave it)")
	fs.StringVar(&c.UserData, "user-data", "", "user-data file giving the management MAC and address")
	fs.StringVar(&c.ConfigDrive, "config-drive", "", "mounted config drive giving the management MAC and address")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve TLS with this certificate (PEM)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "private key of -tls-cert (PEM)")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM)")
	probeV4 := fs.String("probe-v4", probe.DefaultV4.String(), "IPv4 address pinged by GET /v1/status/")
	probeV6 := fs.String("probe-v6", probe.DefaultV6.String(), "IPv6 address pinged by GET /v1/status/")
	dns := fs.String("dns-upstream", "", "comma-separated resolvers; when set, dnsmasq serves DNS to instances")
	ssh := fs.Uint("ssh-port", 22, "SSH port opened on the management interface (0: none)")
	fs.BoolVar(&c.VM, "vm", false, "the agent owns the machine: set the system hostname")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if *port == 0 || *port > 65535 {
		errs = append(errs, fmt.Errorf("-port: %d is not a TCP port", *port))
	}
	c.Port = uint16(*port)
	if *ssh > 65535 {
		errs = append(errs, fmt.Errorf("-ssh-port: %d is not a TCP port", *ssh))
	}
	c.SSHPort = uint16(*ssh)
	for _, p := range []struct {
		flag string
		in   string
		out  *netip.Addr
		v4   bool
	}{{"-probe-v4", *probeV4, &c.ProbeV4, true}, {"-probe-v6", *probeV6, &c.ProbeV6, false}} {
		a, err := netip.ParseAddr(p.in)
		if err != nil || a.Is4() != p.v4 {
			errs = append(errs, fmt.Errorf("%s: %q is not an IPv%s address", p.flag, p.in, map[bool]string{true: "4", false: "6"}[p.v4]))
		}
		*p.out = a
	}
	for _, s := range strings.Split(*dns, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("-dns-upstream: %q is not an IP address", s))
			continue
		}
		c.DNSUpstream = append(c.DNSUpstream, a)
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %q is not one of debug, info, warn, error", *level))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("-log-format: %q is not text or json", c.LogFormat))
	}
	if (c.MgmtMAC == "") != (c.MgmtAddress == "") {
		errs = append(errs, errors.New("-mgmt-mac and -mgmt-address go together"))
	}
	sources := 0
	for _, s := range []string{c.MgmtMAC, c.UserData, c.ConfigDrive} {
		if s != "" {
			sources++
		}
	}
	if sources > 1 {
		errs = append(errs, errors.New("give the management interface once: -mgmt-mac/-mgmt-address, -user-data or -config-drive"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("-tls-client-ca needs -tls-cert and -tls-key"))
	}
	if c.Listen != "" {
		if _, err := listenAddr(c.Listen, c.Port, netip.Addr{}); err != nil {
			errs = append(errs, fmt.Errorf("-listen: %w", err))
		}
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("-state-dir: required"))
	}
	return c, errors.Join(errs...)
}

// listenAddr resolves the API's listen address: flag (host or host:port),
// else the management address, else every address.
func listenAddr(flagValue string, port uint16, mgmt netip.Addr) (string, error) {
	if flagValue == "" {
		if mgmt.IsValid() {
			return netip.AddrPortFrom(mgmt, port).String(), nil
		}
		return net.JoinHostPort("::", strconv.Itoa(int(port))), nil
	}
	if ap, err := netip.ParseAddrPort(flagValue); err == nil {
		return ap.String(), nil
	}
	host := strings.Trim(flagValue, "[]")
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("%q is neither an address nor address:port", flagValue)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
}
