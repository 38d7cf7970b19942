package instance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/astara-go/astara/internal/appliance/api"
	"github.com/astara-go/astara/internal/appliance/bootstrap"
	"github.com/astara-go/astara/internal/appliance/model"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/memory"
)

// fakes is a memory.Runner whose instances are fake appliances: the real
// API handler over a backend that holds NICs named like the agent's (geN
// in plug order) and checks documents as the agent does (ifname, lladdr,
// generation). The client reaches an appliance at its management address
// through dial.
type fakes struct {
	mu     sync.Mutex
	byID   map[string]*fakeAppliance
	byAddr map[netip.Addr]*fakeAppliance
	// silent appliances do not answer until they are told to.
	silent bool
	// hotplugLag is how many interface listings a hot-plug stays unseen.
	hotplugLag int
	// lostHotplug: attached NICs never appear.
	lostHotplug bool
	startErr    error
}

func newFakes() *fakes {
	return &fakes{byID: map[string]*fakeAppliance{}, byAddr: map[netip.Addr]*fakeAppliance{}}
}

type fakeAppliance struct {
	id   string
	addr netip.Addr
	srv  *httptest.Server
	b    *fakeBackend
}

type fakeNIC struct {
	mac    string
	port   string
	unseen int // listings before it appears
}

type fakeBackend struct {
	mu       sync.Mutex
	nics     []fakeNIC
	doc      *model.Document
	at       time.Time
	puts     int
	gets     int
	applyErr error
	// beforeApply runs before each apply (under no lock).
	beforeApply func()
	lostPlugs   bool
}

func (f *fakes) Start(ctx context.Context, spec memory.RunSpec) error {
	if f.startErr != nil {
		return f.startErr
	}
	m, err := bootstrap.ParseUserData(spec.UserData)
	if err != nil {
		return fmt.Errorf("fake appliance: %w", err)
	}
	if m.MAC.String() != spec.ManagementPort.MAC || m.Address.Addr() != spec.ManagementPort.FixedIPs[0].Address {
		return fmt.Errorf("fake appliance: user data %+v does not match the management port %+v", m, spec.ManagementPort)
	}
	b := &fakeBackend{lostPlugs: f.lostHotplug}
	b.nics = append(b.nics, fakeNIC{mac: spec.ManagementPort.MAC, port: spec.ManagementPort.ID})
	for _, p := range spec.Ports {
		b.nics = append(b.nics, fakeNIC{mac: p.MAC, port: p.ID})
	}
	a := &fakeAppliance{id: spec.Instance.ID, addr: m.Address.Addr(), b: b}
	a.srv = httptest.NewUnstartedServer(api.New(b, api.Info{Version: "fake"}, slog.New(slog.DiscardHandler)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.silent {
		a.srv.Start()
	}
	f.byID[a.id] = a
	f.byAddr[a.addr] = a
	return nil
}

func (f *fakes) Stop(ctx context.Context, id string) error {
	f.mu.Lock()
	a := f.byID[id]
	delete(f.byID, id)
	if a != nil && f.byAddr[a.addr] == a {
		delete(f.byAddr, a.addr)
	}
	f.mu.Unlock()
	if a != nil {
		a.srv.Close()
	}
	return nil
}

func (f *fakes) Attach(ctx context.Context, id string, p provider.Port) error {
	a := f.get(id)
	if a == nil {
		return fmt.Errorf("fake appliance %s is not running", id)
	}
	f.mu.Lock()
	lag := f.hotplugLag
	f.mu.Unlock()
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.b.nics = append(a.b.nics, fakeNIC{mac: p.MAC, port: p.ID, unseen: lag})
	return nil
}

func (f *fakes) Detach(ctx context.Context, id string, p provider.Port) error {
	a := f.get(id)
	if a == nil {
		return fmt.Errorf("fake appliance %s is not running", id)
	}
	a.b.mu.Lock()
	defer a.b.mu.Unlock()
	a.b.nics = slices.DeleteFunc(a.b.nics, func(n fakeNIC) bool { return n.port == p.ID })
	return nil
}

// answer makes the silent appliances answer.
func (f *fakes) answer() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.silent = false
	for _, a := range f.byID {
		if a.srv.URL == "" {
			a.srv.Start()
		}
	}
}

func (f *fakes) get(id string) *fakeAppliance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byID[id]
}

// only returns the one running appliance.
func (f *fakes) only() *fakeAppliance {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.byID) != 1 {
		panic(fmt.Sprintf("%d fake appliances run", len(f.byID)))
	}
	for _, a := range f.byID {
		return a
	}
	return nil
}

func (f *fakes) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byID)
}

func (f *fakes) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.byID {
		a.srv.Close()
	}
}

// dial connects to the fake appliance holding the address asked for.
func (f *fakes) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	target := ""
	if a := f.byAddr[ap.Addr()]; a != nil && a.srv.URL != "" {
		target = a.srv.Listener.Addr().String()
	}
	f.mu.Unlock()
	if target == "" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("connection refused (no appliance at %s)", addr)}
	}
	return (&net.Dialer{}).DialContext(ctx, network, target)
}

// Apply checks the document against the NICs as the agent's plan does.
func (b *fakeBackend) Apply(ctx context.Context, doc *model.Document, _ []byte) error {
	b.mu.Lock()
	hook := b.beforeApply
	b.mu.Unlock()
	if hook != nil {
		hook()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.applyErr != nil {
		return b.applyErr
	}
	if b.doc != nil && doc.Generation != 0 && doc.Generation < b.doc.Generation {
		return &model.StaleError{Got: doc.Generation, Applied: b.doc.Generation}
	}
	nics := b.visible()
	var errs []model.FieldError
	for i, n := range doc.Networks {
		idx, _ := model.GenericIndex(n.Interface.IfName)
		switch {
		case idx >= len(nics):
			errs = append(errs, model.FieldError{Field: fmt.Sprintf("networks[%d].interface.ifname", i), Msg: "no such interface"})
		case n.Interface.LLAddr != "" && !strings.EqualFold(n.Interface.LLAddr, nics[idx].mac):
			errs = append(errs, model.FieldError{Field: fmt.Sprintf("networks[%d].interface.lladdr", i),
				Msg: fmt.Sprintf("%s is %s, not %s", n.Interface.IfName, nics[idx].mac, n.Interface.LLAddr)})
		}
	}
	if len(errs) > 0 {
		return &model.ValidationError{Errors: errs}
	}
	b.doc, b.at = doc, time.Now()
	b.puts++
	return nil
}

func (b *fakeBackend) Config() (*model.Document, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gets++
	return b.doc, b.at
}

// visible lists the NICs the appliance sees; b.mu is held.
func (b *fakeBackend) visible() []fakeNIC {
	var out []fakeNIC
	for _, n := range b.nics {
		if n.unseen == 0 {
			out = append(out, n)
		}
	}
	return out
}

func (b *fakeBackend) Interfaces(ctx context.Context) ([]api.Interface, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []api.Interface
	for i, n := range b.visible() {
		out = append(out, api.Interface{IfName: fmt.Sprintf("ge%d", i), LLAddr: n.mac, Addresses: []netip.Prefix{}, MTU: 1500, State: "up", Groups: []string{}})
	}
	for i := range b.nics {
		if b.nics[i].unseen > 0 && !b.lostPlugs {
			b.nics[i].unseen--
		}
	}
	return out, nil
}

func (b *fakeBackend) FirewallRules(context.Context, bool) (string, error) { return "", nil }

func (b *fakeBackend) Reachability(context.Context) api.Reachability { return api.Reachability{} }

func (b *fakeBackend) applied() (*model.Document, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.doc, b.puts
}

func (b *fakeBackend) set(fn func(b *fakeBackend)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn(b)
}
