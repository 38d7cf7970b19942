// Package apply makes an appliance match a router document: it binds the
// document to the kernel's interfaces, splits it into what each driver owns
// (interfaces and routes, dnsmasq, the metadata proxy, BIRD, nftables), runs
// them in order, and keeps the last good document in effect when anything
// fails.
package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/astara-go/astara/internal/appliance/apply/bird"
	"github.com/astara-go/astara/internal/appliance/apply/dhcp"
	"github.com/astara-go/astara/internal/appliance/apply/firewall"
	"github.com/astara-go/astara/internal/appliance/apply/metadata"
	"github.com/astara-go/astara/internal/appliance/apply/netif"
	"github.com/astara-go/astara/internal/appliance/model"
)

// Config configures an Applier.
type Config struct {
	// StateDir holds the applied document and the daemons' files.
	StateDir string
	Logger   *slog.Logger
	// ManagementTCPPorts are opened on the management interface (SSH, API).
	ManagementTCPPorts []uint16
	// DNSUpstream, when set, makes dnsmasq serve DNS to instances.
	DNSUpstream []netip.Addr
	// Keep are addresses never removed from the link that holds them.
	Keep []netip.Prefix
	// SetHostname sets the system hostname from the document (VMs only).
	SetHostname bool
}

// Applier applies documents. Its methods are safe for concurrent use;
// applies are serialized.
type Applier struct {
	cfg   Config
	log   *slog.Logger
	netif *netif.Manager
	fw    *firewall.Manager
	dhcp  *dhcp.Server
	bird  *bird.Daemon
	meta  *metadata.Proxy
	garp  *announcer

	mu        sync.Mutex
	current   *model.Document // the applied document; nil before the first
	appliedAt time.Time
	// currentPlan and currentLinks are what current was applied with,
	// reused while neither the document nor the links change.
	currentPlan  *plan
	currentLinks []netif.Link
	// unsaved is set when the applied document could not be saved.
	unsaved bool
	stats   Stats
}

// Stats counts what the applier did since it started.
type Stats struct {
	// Applies counts successful applies.
	Applies int
	// KernelChanges counts changes made to the kernel and daemons: each
	// address, route, sysctl or link setting, each firewall transaction,
	// each daemon start, reload or restart, each metadata listener change.
	KernelChanges int
	// LastSteps is how long each step of the last apply took.
	LastSteps []Step
}

// Step is one step of an apply and its duration.
type Step struct {
	Name     string
	Duration time.Duration
}

// Stats returns the counters.
func (a *Applier) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

const configFile = "config.json"

// New returns an Applier for the current network namespace. It changes
// nothing until Apply or Restore.
func New(ctx context.Context, cfg Config) (*Applier, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	ni, err := netif.New(log)
	if err != nil {
		return nil, err
	}
	fw, err := firewall.New(firewall.Options{Logger: log})
	if err != nil {
		ni.Close()
		return nil, fmt.Errorf("nftables: %w", err)
	}
	a := &Applier{
		cfg:   cfg,
		log:   log,
		netif: ni,
		fw:    fw,
		dhcp:  dhcp.New(filepath.Join(cfg.StateDir, "dnsmasq"), dhcp.WithLogger(log)),
		bird:  bird.New(filepath.Join(cfg.StateDir, "bird"), bird.WithLogger(log)),
		meta:  metadata.New(metadata.Options{Logger: log}),
		garp:  newAnnouncer(log),
	}
	return a, nil
}

// Close stops the in-process metadata proxy and the announcer. The daemons
// (dnsmasq, BIRD) and the kernel state stay: the router keeps forwarding
// while the agent restarts.
func (a *Applier) Close(ctx context.Context) error {
	a.garp.close()
	a.dhcp.Close()
	a.bird.Close()
	return errors.Join(a.meta.Close(ctx), a.fw.Close(), a.netif.Close())
}

// Config returns the applied document (nil before the first) and when it
// was applied.
func (a *Applier) Config() (*model.Document, time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current, a.appliedAt
}

// Hostname returns the hostname of the applied document ("" before any).
func (a *Applier) Hostname() string {
	doc, _ := a.Config()
	if doc == nil {
		return ""
	}
	return doc.Hostname
}

// Links lists the appliance's data interfaces with their generic names.
func (a *Applier) Links() ([]netif.Link, error) { return netif.ListLinks(a.netif.Handle()) }

// FirewallRules returns the applied nftables ruleset as text.
func (a *Applier) FirewallRules(ctx context.Context, fromKernel bool) (string, error) {
	if fromKernel {
		out, err := exec.CommandContext(ctx, "nft", "list", "table", "inet", a.fw.Table()).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("nft list table inet %s: %w: %s", a.fw.Table(), err, out)
		}
		return string(out), nil
	}
	return a.fw.Ruleset(), nil
}

// Apply makes the appliance match doc. A document older than the applied
// one is refused (*model.StaleError); one naming interfaces the appliance
// lacks is invalid (*model.ValidationError). If a driver fails, the previous
// document is re-applied so that the last good configuration stays in effect.
func (a *Applier) Apply(ctx context.Context, doc *model.Document) error {
	return a.ApplyEncoded(ctx, doc, nil)
}

// ApplyEncoded is Apply for a document that was decoded from encoded (the
// body of a PUT): encoded is what is saved, which spares encoding a large
// document again. encoded may be nil.
func (a *Applier) ApplyEncoded(ctx context.Context, doc *model.Document, encoded []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.current; cur != nil && doc.Generation != 0 && doc.Generation < cur.Generation {
		return &model.StaleError{Got: doc.Generation, Applied: cur.Generation}
	}
	start := time.Now()
	links, err := a.Links()
	if err != nil {
		return err
	}
	same := a.current != nil && sameDocument(doc, a.current)
	p := a.currentPlan
	if !same || !sameLinks(links, a.currentLinks) {
		if p, err = a.newPlan(doc, links); err != nil {
			return err
		}
	}
	planned := time.Since(start)

	// The document is saved while the kernel is being changed: it is the
	// same work either way, and the reply waits for both.
	persisted := make(chan error, 1)
	if same && !a.unsaved {
		persisted <- nil
	} else {
		go func() { persisted <- a.persist(doc, encoded) }()
	}
	err = a.realize(ctx, p, a.current == nil)
	persistStart := time.Now()
	perr := <-persisted
	if err != nil {
		if prev := a.current; prev != nil {
			a.rollback(ctx, prev)
			if perr == nil && !same {
				perr = a.persist(prev, nil)
			}
		}
		a.unsaved = perr != nil
		return err
	}
	a.stats.LastSteps = append([]Step{{Name: "plan", Duration: planned}}, a.stats.LastSteps...)
	a.stats.LastSteps = append(a.stats.LastSteps, Step{Name: "persist (wait)", Duration: time.Since(persistStart)})
	a.current, a.currentPlan, a.currentLinks, a.appliedAt = doc, p, links, time.Now()
	a.unsaved = perr != nil
	if perr != nil {
		// Applied but not saved: say so, and save it with the next apply.
		return perr
	}
	a.stats.Applies++
	a.log.Debug("apply steps", "steps", a.stats.LastSteps)
	a.log.Info("configuration applied", "tenant_id", doc.TenantID, "generation", doc.Generation,
		"duration", time.Since(start).Round(time.Microsecond))
	return nil
}

// sameDocument reports whether two documents are equal; floating IPs, the
// bulk of a large document, are compared without reflection.
func sameDocument(a, b *model.Document) bool {
	if !slices.Equal(a.FloatingIPs, b.FloatingIPs) {
		return false
	}
	ac, bc := *a, *b
	ac.FloatingIPs, bc.FloatingIPs = nil, nil
	return reflect.DeepEqual(&ac, &bc)
}

// sameLinks reports whether the kernel's links are still those a plan was
// made for (names, generic names and MACs; addresses do not matter).
func sameLinks(a, b []netif.Link) bool {
	return slices.EqualFunc(a, b, func(x, y netif.Link) bool {
		return x.Name == y.Name && x.Generic == y.Generic && bytes.Equal(x.MAC, y.MAC)
	})
}

func (a *Applier) newPlan(doc *model.Document, links []netif.Link) (*plan, error) {
	return newPlan(doc, links, planConfig{
		ManagementTCPPorts: a.cfg.ManagementTCPPorts,
		DNSUpstream:        a.cfg.DNSUpstream,
		Keep:               a.cfg.Keep,
	})
}

// realize runs the drivers in dependency order: addresses and routes first
// (the proxies bind to them), then the daemons, then the firewall, then the
// cleanup of what was removed and the announcements of what was added.
func (a *Applier) realize(ctx context.Context, p *plan, announceAll bool) error {
	a.stats.LastSteps = a.stats.LastSteps[:0]
	last := time.Now()
	step := func(name string) {
		now := time.Now()
		a.stats.LastSteps = append(a.stats.LastSteps, Step{Name: name, Duration: now.Sub(last)})
		last = now
	}
	defer step("announce")
	nres, err := a.netif.Apply(ctx, p.netif)
	step("interfaces")
	a.stats.KernelChanges += nres.Changes
	if err != nil {
		return fmt.Errorf("interfaces: %w", err)
	}
	dres, err := a.dhcp.Apply(ctx, p.dhcp)
	step("dhcp")
	if err != nil {
		return fmt.Errorf("dhcp: %w", err)
	}
	if dres.Action != dhcp.ActionNone {
		a.stats.KernelChanges++
	}
	mres, err := a.meta.Apply(ctx, p.metadata)
	step("metadata")
	if err != nil {
		return fmt.Errorf("metadata proxy: %w", err)
	}
	a.stats.KernelChanges += len(mres.Opened) + len(mres.Closed)
	bres, err := a.bird.Apply(ctx, p.bird)
	step("bird")
	if err != nil {
		return fmt.Errorf("bird: %w", err)
	}
	if bres.Action != bird.ActionNone {
		a.stats.KernelChanges++
	}
	fres, err := a.fw.Apply(ctx, p.firewall)
	step("firewall")
	if err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	if fres.Changed {
		a.stats.KernelChanges++
	}
	// Flows through addresses the router gave up must not live on in
	// conntrack (a removed floating IP must stop forwarding at once).
	if _, err := a.netif.FlushConntrack(ctx, nres.RemovedV4); err != nil {
		return err
	}
	step("conntrack")
	announce := append(nres.AddedLocal, nres.AddedV4...)
	if announceAll {
		// After a restart (or a failover, or on a replacement appliance
		// whose ports have new MACs) neighbours on every network may hold
		// stale entries: announce every IPv4 address the router owns.
		announce = slices.Clone(p.netif.LocalAddrs)
		for _, in := range p.netif.Interfaces {
			for _, a4 := range in.Addresses {
				if a4.Addr().Is4() {
					announce = append(announce, netif.LocalAddr{Addr: a4.Addr(), Dev: in.Name})
				}
			}
		}
	}
	a.garp.announce(announce)
	if a.cfg.SetHostname {
		if h, err := os.Hostname(); err == nil && h != p.doc.Hostname {
			if err := unix.Sethostname([]byte(p.doc.Hostname)); err != nil {
				return fmt.Errorf("setting the hostname: %w", err)
			}
		}
	}
	return nil
}

func (a *Applier) rollback(ctx context.Context, prev *model.Document) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	links, err := a.Links()
	var p *plan
	if err == nil {
		p, err = a.newPlan(prev, links)
	}
	if err == nil {
		err = a.realize(ctx, p, false)
	}
	if err != nil {
		a.log.Error("restoring the previous configuration failed", "tenant_id", prev.TenantID,
			"generation", prev.Generation, "err", err)
		return
	}
	a.log.Warn("previous configuration restored", "tenant_id", prev.TenantID, "generation", prev.Generation)
}

// persist writes doc to the state directory, atomically: an agent crash
// leaves the old or the new document, never a torn one.
func (a *Applier) persist(doc *model.Document, encoded []byte) error {
	b := encoded
	if b == nil {
		var err error
		if b, err = json.Marshal(doc); err != nil {
			return fmt.Errorf("encoding the document: %w", err)
		}
	}
	path := filepath.Join(a.cfg.StateDir, configFile)
	if err := writeFileAtomic(path, b, 0o600); err != nil {
		return fmt.Errorf("saving the applied document: %w", err)
	}
	return nil
}

// Restore re-applies the document saved by the last successful Apply, if
// any: after a restart (or a crash) the agent serves its router again
// without waiting for the orchestrator.
func (a *Applier) Restore(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(a.cfg.StateDir, configFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the saved document: %w", err)
	}
	doc, err := model.Decode(b)
	if err != nil {
		return fmt.Errorf("the saved document: %w", err)
	}
	if err := a.Apply(ctx, doc); err != nil {
		return fmt.Errorf("re-applying the saved document: %w", err)
	}
	return nil
}

// writeFileAtomic replaces path with data: a reader (or an agent restarted
// after a crash) sees the old or the new content, never a torn file. It does
// not fsync: the page cache outlives the agent's process, which is the crash
// this file is for; a machine crash loses the kernel state the file
// describes as well, and the orchestrator pushes the document again.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
