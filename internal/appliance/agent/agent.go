package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/astara-go/astara/internal/appliance/api"
	"github.com/astara-go/astara/internal/appliance/apply"
	"github.com/astara-go/astara/internal/appliance/apply/netif"
	"github.com/astara-go/astara/internal/appliance/bootstrap"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/appliance/probe"
)

// Version is the agent's version, reported by GET /v1/info.
const Version = "0.1.0"

// Run runs the agent until ctx ends: bootstrap the management interface,
// restore the last applied configuration, serve the API.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := netif.EnableForwarding(); err != nil {
		return err
	}
	mgmt, err := configureManagement(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	ports := []uint16{cfg.Port}
	if cfg.SSHPort != 0 {
		ports = append([]uint16{cfg.SSHPort}, ports...)
	}
	acfg := apply.Config{
		StateDir:           cfg.StateDir,
		Logger:             log,
		ManagementTCPPorts: ports,
		DNSUpstream:        cfg.DNSUpstream,
		SetHostname:        cfg.VM,
	}
	if mgmt.IsValid() {
		acfg.Keep = []netip.Prefix{mgmt}
	}
	applier, err := apply.New(ctx, acfg)
	if err != nil {
		return err
	}
	defer applier.Close(context.WithoutCancel(ctx))
	if err := applier.Restore(ctx); err != nil {
		// The orchestrator pushes a configuration again anyway; serve.
		log.Error("restoring the last applied configuration failed", "err", err)
	}

	addr, err := listenAddr(cfg.Listen, cfg.Port, mgmt.Addr())
	if err != nil {
		return err
	}
	tlsConf, err := tlsConfig(cfg)
	if err != nil {
		return err
	}
	b := &backend{applier: applier, probeV4: cfg.ProbeV4, probeV6: cfg.ProbeV6}
	srv := &http.Server{
		Handler:           api.New(b, api.Info{Version: Version, Hostname: applier.Hostname}, log),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		TLSConfig:         tlsConf,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("API listener: %w", err)
	}
	log.Info("appliance API serving", "addr", ln.Addr().String(), "tls", tlsConf != nil, "mtls", cfg.TLSClientCA != "")

	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("API server: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("API shutdown: %w", err)
	}
	log.Info("appliance agent stopped; dnsmasq and BIRD keep serving")
	return nil
}

// configureManagement sets the management address from the flags, the user
// data or the config drive, and returns it (invalid when none is given).
func configureManagement(ctx context.Context, cfg Config, log *slog.Logger) (netip.Prefix, error) {
	var (
		m   bootstrap.Management
		err error
	)
	switch {
	case cfg.MgmtMAC != "":
		m.MAC, err = net.ParseMAC(cfg.MgmtMAC)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("-mgmt-mac: %w", err)
		}
		if m.Address, err = netip.ParsePrefix(cfg.MgmtAddress); err != nil {
			return netip.Prefix{}, fmt.Errorf("-mgmt-address: %w", err)
		}
		m.MTU = cfg.MgmtMTU
		if err := m.Validate(); err != nil {
			return netip.Prefix{}, fmt.Errorf("management interface: %w", err)
		}
	case cfg.UserData != "":
		b, err := os.ReadFile(cfg.UserData)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("-user-data: %w", err)
		}
		if m, err = bootstrap.ParseUserData(b); err != nil {
			return netip.Prefix{}, fmt.Errorf("-user-data %s: %w", cfg.UserData, err)
		}
	case cfg.ConfigDrive != "":
		if m, err = bootstrap.FromConfigDrive(cfg.ConfigDrive); err != nil {
			return netip.Prefix{}, fmt.Errorf("-config-drive %s: %w", cfg.ConfigDrive, err)
		}
	default:
		return netip.Prefix{}, nil
	}
	ifname, err := bootstrap.Configure(ctx, m)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("configuring the management interface: %w", err)
	}
	log.Info("management interface configured", "interface", ifname, "mac", m.MAC.String(), "address", m.Address.String())
	return m.Address, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-client-ca %s: no PEM certificate found", cfg.TLSClientCA)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// backend adapts the applier to what the API serves.
type backend struct {
	applier          *apply.Applier
	probeV4, probeV6 netip.Addr
}

// applyTimeout bounds one apply. The apply does not follow the request's
// context: a client that hangs up must not leave a router half configured.
const applyTimeout = 2 * time.Minute

func (b *backend) Apply(ctx context.Context, doc *model.Document, body []byte) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	return b.applier.ApplyEncoded(ctx, doc, body)
}

func (b *backend) Config() (*model.Document, time.Time) { return b.applier.Config() }

func (b *backend) FirewallRules(ctx context.Context, fromKernel bool) (string, error) {
	return b.applier.FirewallRules(ctx, fromKernel)
}

func (b *backend) Interfaces(ctx context.Context) ([]api.Interface, error) {
	links, err := b.applier.Links()
	if err != nil {
		return nil, err
	}
	out := make([]api.Interface, 0, len(links))
	for _, l := range links {
		state := "down"
		if l.Up {
			state = "up"
		}
		addrs := l.Addresses
		if addrs == nil {
			addrs = []netip.Prefix{}
		}
		out = append(out, api.Interface{
			IfName: l.Generic, LLAddr: l.MAC.String(), Addresses: addrs, MTU: l.MTU,
			State: state, Groups: []string{},
		})
	}
	return out, nil
}

// Reachability pings both probe targets at once, within two seconds.
func (b *backend) Reachability(ctx context.Context) api.Reachability {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var r api.Reachability
	var wg sync.WaitGroup
	wg.Go(func() { r.V4 = probe.Ping(ctx, b.probeV4) == nil })
	wg.Go(func() { r.V6 = probe.Ping(ctx, b.probeV6) == nil })
	wg.Wait()
	return r
}
