package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/astara-go/astara/internal/provider"
)

// recordFile is an instance's record in its directory.
const recordFile = "instance.json"

// Temporary names in the instances directory: an instance being published
// (.new-<id>) or deleted (.gone-<id>). New removes both: the first never
// had a namespace, the second has none any more.
const (
	newPrefix  = ".new-"
	gonePrefix = ".gone-"
)

// record is what instance.json holds.
type record struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	ImageID   string       `json:"image_id,omitempty"`
	FlavorID  string       `json:"flavor_id,omitempty"`
	Created   time.Time    `json:"created"`
	Namespace string       `json:"namespace"`
	Ports     []portRecord `json:"ports"`
	// PID is the agent's process, and PIDStart when it started (clock
	// ticks after the host's boot), which tells it from a later process
	// given the same pid. Zero until the agent runs.
	PID      int    `json:"pid,omitempty"`
	PIDStart uint64 `json:"pid_start,omitempty"`
}

// portRecord is one port of an instance.
type portRecord struct {
	ID         string `json:"id"`
	NetworkID  string `json:"network_id"`
	MAC        string `json:"mac"`
	Device     string `json:"device"`      // ethN, in the namespace
	HostDevice string `json:"host_device"` // its peer, in the host namespace
	Bridge     string `json:"bridge"`
	Management bool   `json:"management,omitempty"`
}

func (r *record) port(id string) int {
	return slices.IndexFunc(r.Ports, func(p portRecord) bool { return p.ID == id })
}

// nextDevice returns N for the next device ethN: one more than the last,
// so that a hot-plugged NIC sorts after the others (the appliance names
// its NICs ge0, ge1, ... in that order); past eth999, the first free one.
func (r *record) nextDevice() (int, error) {
	used := map[int]bool{}
	last := -1
	for _, p := range r.Ports {
		n, err := strconv.Atoi(strings.TrimPrefix(p.Device, "eth"))
		if err != nil {
			return 0, fmt.Errorf("port %s has device %q", p.ID, p.Device)
		}
		used[n] = true
		last = max(last, n)
	}
	if last < maxDevice {
		return last + 1, nil
	}
	for n := 0; n <= maxDevice; n++ {
		if !used[n] {
			return n, nil
		}
	}
	return 0, fmt.Errorf("instance %s has %d devices already", r.ID, len(r.Ports))
}

// load reads an instance's record; provider.ErrNotFound when there is none.
func (c *Compute) load(id string) (*record, error) {
	if !validID(id) {
		return nil, fmt.Errorf("instance %q: %w", id, provider.ErrNotFound)
	}
	b, err := os.ReadFile(filepath.Join(c.InstanceDir(id), recordFile))
	if isNotExist(err) {
		return nil, fmt.Errorf("instance %s: %w", id, provider.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", id, err)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("instance %s: %s is corrupt: %w", id, filepath.Join(c.InstanceDir(id), recordFile), err)
	}
	if r.ID != id {
		return nil, fmt.Errorf("instance %s: its record names instance %q", id, r.ID)
	}
	return &r, nil
}

// save writes an instance's record atomically.
func (c *Compute) save(r *record) error {
	if err := writeFileAtomic(filepath.Join(c.InstanceDir(r.ID), recordFile), r); err != nil {
		return fmt.Errorf("recording instance %s: %w", r.ID, err)
	}
	return nil
}

// publish makes an instance's directory and record appear at once.
func (c *Compute) publish(r *record) error {
	tmp := filepath.Join(c.instancesDir(), newPrefix+r.ID)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("recording instance %s: %w", r.ID, err)
	}
	if err := writeFileAtomic(filepath.Join(tmp, recordFile), r); err != nil {
		return errors.Join(fmt.Errorf("recording instance %s: %w", r.ID, err), os.RemoveAll(tmp))
	}
	if err := os.Rename(tmp, c.InstanceDir(r.ID)); err != nil {
		return errors.Join(fmt.Errorf("recording instance %s: %w", r.ID, err), os.RemoveAll(tmp))
	}
	if err := syncDir(c.instancesDir()); err != nil {
		return fmt.Errorf("recording instance %s: %w", r.ID, err)
	}
	return nil
}

// unpublish removes an instance's directory: first out of sight (one
// rename), then its files.
func (c *Compute) unpublish(id string) error {
	gone := filepath.Join(c.instancesDir(), gonePrefix+id)
	if err := os.Rename(c.InstanceDir(id), gone); err != nil && !isNotExist(err) {
		return fmt.Errorf("removing the directory of instance %s: %w", id, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("removing the directory of instance %s: %w", id, err)
	}
	return nil
}

// records reads every instance's record. A record that cannot be read is
// logged and skipped: Get still reports it (ERROR) and Delete frees it.
func (c *Compute) records() ([]*record, error) {
	entries, err := os.ReadDir(c.instancesDir())
	if err != nil {
		return nil, fmt.Errorf("listing instances: %w", err)
	}
	var out []*record
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		r, err := c.load(e.Name())
		switch {
		case errors.Is(err, provider.ErrNotFound): // deleted meanwhile
		case err != nil:
			c.log.Warn("skipping an instance whose record cannot be read", "instance_id", e.Name(), "err", err)
		default:
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// sweep removes what a crash left in the instances directory: instances
// not yet published, and instances already deleted but for their files.
func (c *Compute) sweep() error {
	entries, err := os.ReadDir(c.instancesDir())
	if err != nil {
		return fmt.Errorf("listing instances: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), newPrefix) || strings.HasPrefix(e.Name(), gonePrefix) {
			c.log.Info("removing a leftover directory", "dir", e.Name())
			if err := os.RemoveAll(filepath.Join(c.instancesDir(), e.Name())); err != nil {
				return fmt.Errorf("removing a leftover directory: %w", err)
			}
		}
	}
	return nil
}

// writeFileAtomic writes v as JSON to path through a synced temporary file
// renamed over it.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return errors.Join(err, removeIfExists(tmp))
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

// status tells an instance's status from its namespace and agent.
func (c *Compute) status(r *record) provider.InstanceStatus {
	if r.PID == 0 {
		c.mu.Lock()
		booting := c.booting[r.ID]
		c.mu.Unlock()
		if booting {
			return provider.InstanceBuild
		}
		return provider.InstanceError // a boot that did not finish
	}
	ns, err := statNS(nsPath(r.Namespace))
	if err != nil || !sameProcess(r.PID, r.PIDStart) || !inNamespace(r.PID, ns) {
		return provider.InstanceError
	}
	if listening(r.PID, c.opts.AgentPort) {
		return provider.InstanceActive
	}
	return provider.InstanceBuild
}

// instance is the provider's view of a record.
func (c *Compute) instance(r *record) provider.Instance {
	in := provider.Instance{ID: r.ID, Name: r.Name, ImageID: r.ImageID, Status: c.status(r), Created: r.Created}
	for _, p := range r.Ports {
		in.PortIDs = append(in.PortIDs, p.ID)
	}
	return in
}
