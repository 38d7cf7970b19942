// Package local is the compute provider of standalone mode: an instance is
// a Linux network namespace running the astara-appliance agent, and each of
// its ports is a veth pair whose end in the namespace (eth0, eth1, ...)
// carries the port's MAC and whose end in the host namespace is a port of
// the network's Linux bridge. The management network is a bridge on which
// the orchestrator has its address; an external network's bridge can
// enslave a host interface (Options.Uplinks), other bridges stay local.
//
// Instances outlive the orchestrator: each agent runs in a session of its
// own, without a parent-death signal, and each instance is recorded in a
// directory of the state directory, where a Compute made after a restart
// finds them again. (Under systemd, the orchestrator's unit needs
// KillMode=process, or stopping it kills the agents with its cgroup.)
//
// # On disk
//
//	<StateDir>/instances/<id>/instance.json  identity, ports, agent pid (written atomically)
//	<StateDir>/instances/<id>/user-data      BootSpec.UserData, read by the agent (-user-data)
//	<StateDir>/instances/<id>/agent.log      the agent's stdout and stderr
//	<StateDir>/instances/<id>/state/         the agent's -state-dir (its document, dnsmasq, BIRD)
//	<StateDir>/bridges/<bridge>              a bridge this provider created (for Prune)
//	<StateDir>/lock                          flock(2)ed by the Compute using the directory
//
// # Names
//
// Instance ids are random UUIDs. The namespace of an instance is
// NamespacePrefix + id under /run/netns, so operators can `ip netns exec`
// into it. The host end of its Nth device is "ak" + the first 9 hex digits
// of the id + "-" + N (at most 15 bytes: N < 1000). A network's bridge is
// Options.Bridges[id], else Options.BridgeName(id), DefaultBridgeName by
// default ("br-" + 11 hex digits).
//
// # Status
//
// An instance is BUILD while it boots and until its agent listens on its
// API port, ACTIVE while the agent runs and listens, and ERROR when the
// agent died or the namespace vanished (its record is kept, so that the
// orchestrator sees the failure and deletes it, which frees everything).
package local

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/astara-go/astara/internal/provider"
)

// Defaults of Options.
const (
	DefaultAgentPort       = 5000
	DefaultNamespacePrefix = "astara-"
	DefaultStopTimeout     = 5 * time.Second
)

// maxIfName is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfName = 15

// Options configure a Compute. Zero values take the defaults.
type Options struct {
	// StateDir holds the instances' directories (required; created 0755
	// if missing, as dnsmasq in an instance reads its files as nobody).
	StateDir string
	// AgentPath is the astara-appliance binary (required).
	AgentPath string
	// AgentPort is the agent's API port (-port); default 5000.
	AgentPort uint16
	// TLSCert, TLSKey and TLSClientCA are the agent's -tls-cert, -tls-key
	// and -tls-client-ca files (mutual TLS with the orchestrator); empty:
	// plain HTTP.
	TLSCert, TLSKey, TLSClientCA string
	// AgentArgs are more agent flags, after the ones above.
	AgentArgs []string
	// AgentEnv are more environment variables (KEY=value) for the agent,
	// which otherwise inherits the orchestrator's environment.
	AgentEnv []string

	// ManagementNetworkID is the management network's id (optional):
	// management ports must be on it, and its ports use ManagementBridge.
	ManagementNetworkID string
	// ManagementBridge is the management network's bridge, where every
	// management port goes; default: the bridge of ManagementNetworkID.
	// New creates it if missing.
	ManagementBridge string
	// ManagementAddress is the orchestrator's address on the management
	// bridge, e.g. fdca:3ba5:a17a:acda::1/64 (a ULA prefix); New adds it,
	// without duplicate address detection, if missing. Zero: none.
	ManagementAddress netip.Prefix

	// Bridges maps network ids to bridge names; other networks use
	// BridgeName.
	Bridges map[string]string
	// BridgeName names the bridge of a network not in Bridges; default
	// DefaultBridgeName. Names must be valid interface names (≤ 15 bytes).
	BridgeName func(networkID string) string
	// Uplinks maps network ids (external networks) to host interfaces
	// enslaved to their bridges when the provider brings them up; the
	// bridges of other networks stay local to the host.
	Uplinks map[string]string

	// NamespacePrefix starts the namespaces' names; default "astara-".
	NamespacePrefix string
	// StopTimeout is how long Delete waits for an instance's processes to
	// exit after SIGTERM before it kills them; default 5s.
	StopTimeout time.Duration
	// Logger receives the provider's logs; default: discarded.
	Logger *slog.Logger
	// OnExit, when set, is called (on a goroutine of the provider's) with
	// an instance whose agent exited: the orchestrator polls its resource
	// at once instead of at the next health check.
	OnExit func(id, name string)
}

// Compute is a provider.ComputeAPI whose instances are network namespaces
// on this host. It is safe for concurrent use. One Compute at a time uses
// a state directory: New fails while another holds it (until Close).
type Compute struct {
	opts   Options
	log    *slog.Logger
	ipPath string
	mgmtBr string
	hostNS netns.NsHandle // where the bridges and the veths' host ends live

	lock     *os.File // flock'ed: one Compute per state directory
	locks    keyedMutex
	bridgeMu sync.RWMutex // held exclusively by Prune

	mu      sync.Mutex
	booting map[string]bool // instances whose Boot has not started the agent yet
	closed  bool

	watchers sync.WaitGroup // goroutines waiting for adopted agents to exit
}

var _ provider.ComputeAPI = (*Compute)(nil)

// New returns a Compute on the state directory opts.StateDir. It creates
// the management bridge, up, with the orchestrator's address, if they are
// missing, and removes what a crash left half-made in the state directory.
// The network namespace of the calling thread is the host's: the bridges
// and the veths' host ends live there. Close releases it.
func New(opts Options) (*Compute, error) {
	if err := opts.fill(); err != nil {
		return nil, fmt.Errorf("local compute: %w", err)
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("local compute: ip(8) runs the agents in their namespaces: %w", err)
	}
	c := &Compute{opts: opts, log: opts.Logger, ipPath: ipPath, hostNS: netns.None(), booting: map[string]bool{}}
	if c.mgmtBr = opts.ManagementBridge; c.mgmtBr == "" {
		c.mgmtBr = opts.BridgeName(opts.ManagementNetworkID)
	}
	if err := checkIfName(c.mgmtBr); err != nil {
		return nil, fmt.Errorf("local compute: management bridge: %w", err)
	}
	for _, d := range []string{opts.StateDir, c.instancesDir(), c.bridgesDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("local compute: %w", err)
		}
	}
	if c.lock, err = lockDir(opts.StateDir); err != nil {
		return nil, fmt.Errorf("local compute: %w", err)
	}
	fail := func(err error) (*Compute, error) {
		return nil, errors.Join(fmt.Errorf("local compute: %w", err), c.Close())
	}
	if err := c.sweep(); err != nil {
		return fail(err)
	}
	if c.hostNS, err = netns.Get(); err != nil {
		c.hostNS = netns.None()
		return fail(fmt.Errorf("opening the host's network namespace: %w", err))
	}
	if err := c.ensureManagementBridge(); err != nil {
		return fail(fmt.Errorf("management bridge %s: %w", c.mgmtBr, err))
	}
	if err := c.watchAdopted(); err != nil {
		return fail(err)
	}
	return c, nil
}

// lockDir takes the lock of a state directory, without waiting.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644) // close-on-exec: agents do not hold it
	if err != nil {
		return nil, fmt.Errorf("locking the state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another local compute provider", dir)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// Close releases the state directory and the host namespace handle; the
// instances keep running. Calling it again does nothing.
func (c *Compute) Close() error {
	err := c.close()
	c.watchers.Wait() // they see closed within half a second
	return err
}

func (c *Compute) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.hostNS.IsOpen() {
		if err := c.hostNS.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the host's namespace handle: %w", err))
		}
	}
	if c.lock != nil {
		if err := c.lock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("unlocking the state directory: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("local compute: %w", err)
	}
	return nil
}

func (o *Options) fill() error {
	var errs []error
	if o.StateDir == "" {
		errs = append(errs, errors.New("StateDir: required"))
	} else if !filepath.IsAbs(o.StateDir) {
		abs, err := filepath.Abs(o.StateDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("StateDir: %w", err))
		}
		o.StateDir = abs
	}
	if o.AgentPath == "" {
		errs = append(errs, errors.New("AgentPath: required"))
	} else if fi, err := os.Stat(o.AgentPath); err != nil {
		errs = append(errs, fmt.Errorf("AgentPath: %w", err))
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		errs = append(errs, fmt.Errorf("AgentPath: %s is not an executable file", o.AgentPath))
	}
	if o.AgentPort == 0 {
		o.AgentPort = DefaultAgentPort
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		errs = append(errs, errors.New("TLSCert and TLSKey go together"))
	}
	if o.TLSClientCA != "" && o.TLSCert == "" {
		errs = append(errs, errors.New("TLSClientCA needs TLSCert and TLSKey"))
	}
	if o.ManagementNetworkID == "" && o.ManagementBridge == "" {
		errs = append(errs, errors.New("ManagementBridge or ManagementNetworkID: required"))
	}
	if o.ManagementAddress.IsValid() && o.ManagementAddress.Addr().Zone() != "" {
		errs = append(errs, fmt.Errorf("ManagementAddress: %s has a zone", o.ManagementAddress))
	}
	if o.BridgeName == nil {
		o.BridgeName = DefaultBridgeName
	}
	for net, br := range o.Bridges {
		if err := checkIfName(br); err != nil {
			errs = append(errs, fmt.Errorf("Bridges[%s]: %w", net, err))
		}
	}
	for net, dev := range o.Uplinks {
		if err := checkIfName(dev); err != nil {
			errs = append(errs, fmt.Errorf("Uplinks[%s]: %w", net, err))
		}
	}
	if o.NamespacePrefix == "" {
		o.NamespacePrefix = DefaultNamespacePrefix
	} else if strings.ContainsAny(o.NamespacePrefix, "/\x00") || o.NamespacePrefix[0] == '.' {
		errs = append(errs, fmt.Errorf("NamespacePrefix: %q cannot start a file name", o.NamespacePrefix))
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

// DefaultBridgeName names a network's bridge "br-" + 11 hex digits: the
// first ones of the id when it is hex (dashes aside, as in a UUID), else
// of the SHA-256 of the id.
func DefaultBridgeName(networkID string) string {
	h := strings.ToLower(strings.ReplaceAll(networkID, "-", ""))
	if len(h) < 11 || strings.Trim(h, "0123456789abcdef") != "" {
		sum := sha256.Sum256([]byte(networkID))
		h = hex.EncodeToString(sum[:])
	}
	return "br-" + h[:11]
}

// Bridge returns the name of the bridge a network's ports are plugged into.
func (c *Compute) Bridge(networkID string) (string, error) {
	var br string
	switch {
	case networkID == "":
		return "", errors.New("no network id")
	case c.opts.ManagementNetworkID != "" && networkID == c.opts.ManagementNetworkID:
		br = c.mgmtBr
	case c.opts.Bridges[networkID] != "":
		br = c.opts.Bridges[networkID]
	default:
		br = c.opts.BridgeName(networkID)
	}
	if err := checkIfName(br); err != nil {
		return "", fmt.Errorf("bridge of network %s: %w", networkID, err)
	}
	return br, nil
}

// ManagementBridge returns the management network's bridge.
func (c *Compute) ManagementBridge() string { return c.mgmtBr }

// Namespace returns the name of an instance's network namespace.
func (c *Compute) Namespace(id string) string { return c.opts.NamespacePrefix + id }

// InstanceDir returns an instance's directory.
func (c *Compute) InstanceDir(id string) string { return filepath.Join(c.instancesDir(), id) }

// LogFile returns the file an instance's agent logs to.
func (c *Compute) LogFile(id string) string { return filepath.Join(c.InstanceDir(id), "agent.log") }

func (c *Compute) instancesDir() string { return filepath.Join(c.opts.StateDir, "instances") }
func (c *Compute) bridgesDir() string   { return filepath.Join(c.opts.StateDir, "bridges") }

// hostDevice names the host end of an instance's device ethN.
func hostDevice(id string, n int) string { return hostDevicePrefix(id) + strconv.Itoa(n) }

// hostDevicePrefix starts the names of an instance's host ends.
func hostDevicePrefix(id string) string { return "ak" + hostTag(id) + "-" }

// hostTag is the part of the host ends' names that identifies an instance.
func hostTag(id string) string { return strings.ReplaceAll(id, "-", "")[:9] }

// maxDevice bounds N in ethN, so that host names fit in 15 bytes.
const maxDevice = 999

// newID returns a random (version 4) UUID.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generating an instance id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// validID reports whether id has the shape of the ids Boot makes (so it
// is safe in paths and names).
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, r := range id {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", r) {
				return false
			}
		}
	}
	return true
}

// checkIfName reports whether name can name a Linux interface.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name")
	case len(name) > maxIfName:
		return fmt.Errorf("interface name %q is longer than %d bytes", name, maxIfName)
	case name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\x00"):
		return fmt.Errorf("%q is not a valid interface name", name)
	}
	return nil
}
