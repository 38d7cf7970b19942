package nova

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/retry"
)

// wireServer is a server as Nova shows it, as much as the provider reads.
type wireServer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Created string `json:"created"`
	// Image is {"id": ..., "links": [...]}, or "" for a server booted
	// from a volume.
	Image json.RawMessage `json:"image"`
}

// gone reports whether a server status means the server is deleted.
func gone(status string) bool { return status == "DELETED" || status == "SOFT_DELETED" }

// instanceStatus maps Nova's server status to the statuses the
// orchestrator distinguishes.
func instanceStatus(status string) provider.InstanceStatus {
	switch status {
	case "BUILD":
		return provider.InstanceBuild
	case "ACTIVE":
		return provider.InstanceActive
	case "ERROR":
		return provider.InstanceError
	}
	return provider.InstanceOther
}

// instance converts a server (without its ports).
func (p *Provider) instance(ctx context.Context, w wireServer) provider.Instance {
	in := provider.Instance{ID: w.ID, Name: w.Name, Status: instanceStatus(w.Status)}
	var img struct {
		ID string `json:"id"`
	}
	if len(w.Image) > 0 && w.Image[0] == '{' {
		if err := json.Unmarshal(w.Image, &img); err != nil {
			p.log.WarnContext(ctx, "server image unreadable", "instance_id", w.ID, "name", w.Name, "err", err)
		}
	}
	in.ImageID = img.ID
	if w.Created != "" {
		t, err := time.Parse(time.RFC3339, w.Created)
		if err != nil {
			p.log.WarnContext(ctx, "server creation time unreadable", "instance_id", w.ID, "name", w.Name, "err", err)
		}
		in.Created = t
	}
	return in
}

// Boot implements provider.ComputeAPI: it creates the server with the
// management port as its first NIC and the other ports after it in order,
// a config drive and the user data, then reads it (for at most BuildWait)
// to report its status, image and creation time. PortIDs are the ports it
// booted with. Once Nova accepted the server, Boot returns it: if it
// cannot be read in time, its status is BUILD and Created is when the
// request was sent. The create is retried only when it surely was not
// sent.
func (p *Provider) Boot(ctx context.Context, spec provider.BootSpec) (*provider.Instance, error) {
	portIDs, err := checkSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("booting server %q: %w", spec.Name, err)
	}
	nets := make([]servers.Network, len(portIDs))
	for i, id := range portIDs {
		nets[i] = servers.Network{Port: id}
	}
	configDrive := true
	opts := servers.CreateOpts{
		Name:        spec.Name,
		ImageRef:    spec.ImageID,
		FlavorRef:   spec.FlavorID,
		Networks:    nets,
		ConfigDrive: &configDrive,
	}
	if len(spec.UserData) > 0 {
		// gophercloud sends user data that happens to be valid base64 as
		// it is: encoding it here makes it always arrive as given.
		opts.UserData = []byte(base64.StdEncoding.EncodeToString(spec.UserData))
	}
	sent := time.Now()
	var created struct {
		ID string `json:"id"`
	}
	err = p.do(ctx, "CreateServer", retry.NotSent, func(ctx context.Context) error {
		return servers.Create(ctx, p.client, opts, nil).ExtractIntoStructPtr(&created, "server")
	})
	if err != nil {
		return nil, fmt.Errorf("booting server %s: %w", spec.Name, err)
	}
	if created.ID == "" {
		return nil, fmt.Errorf("booting server %s: the compute API answered without a server id", spec.Name)
	}
	log := p.log.With("instance_id", created.ID, "name", spec.Name)
	inst := &provider.Instance{
		ID: created.ID, Name: spec.Name, ImageID: spec.ImageID,
		Status: provider.InstanceBuild, Created: sent, PortIDs: portIDs,
	}
	w, err := p.awaitServer(ctx, created.ID)
	if err != nil {
		log.WarnContext(ctx, "server booted but not readable yet: taking it as BUILD", "err", err)
		return inst, nil
	}
	read := p.instance(ctx, w)
	inst.Status, inst.Created = read.Status, read.Created
	if read.Name != "" {
		inst.Name = read.Name
	}
	if read.ImageID != "" {
		inst.ImageID = read.ImageID
	}
	if inst.Created.IsZero() {
		inst.Created = sent
	}
	log.InfoContext(ctx, "server booted", "status", w.Status, "image", inst.ImageID, "port_ids", portIDs)
	return inst, nil
}

// checkSpec validates a boot spec and returns its port ids, management
// port first.
func checkSpec(spec provider.BootSpec) ([]string, error) {
	if spec.Name == "" || spec.ImageID == "" || spec.FlavorID == "" {
		return nil, errors.New("the name, image and flavor are required")
	}
	ids := []string{spec.ManagementPort.ID}
	for _, port := range spec.Ports {
		ids = append(ids, port.ID)
	}
	for _, id := range ids {
		if err := checkID("port", id); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// awaitServer reads a server just created until Nova shows it with a
// status, for at most BuildWait.
func (p *Provider) awaitServer(ctx context.Context, id string) (wireServer, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.BuildWait)
	defer cancel()
	var w wireServer
	var last error
	err := poll(ctx, p.opts.PollInterval, func(ctx context.Context) (bool, error) {
		var err error
		w, err = p.getServer(ctx, id)
		switch {
		case err == nil:
			return w.Status != "", nil
		case errors.Is(err, provider.ErrNotFound) && ctx.Err() == nil:
			last = err
			return false, nil
		}
		return false, err
	})
	if err != nil && last != nil {
		err = fmt.Errorf("%w (last: %w)", err, last)
	}
	return w, err
}

// Get implements provider.ComputeAPI. PortIDs come from the server's
// os-interface list (a second request), in Nova's order; a server deleted
// or soft-deleted is not found.
func (p *Provider) Get(ctx context.Context, id string) (*provider.Instance, error) {
	if err := checkID("server", id); err != nil {
		return nil, fmt.Errorf("getting server: %w", err)
	}
	w, err := p.getServer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("getting server %s: %w", id, err)
	}
	in := p.instance(ctx, w)
	in.PortIDs, err = p.interfaces(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("getting server %s (%s): listing its interfaces: %w", w.Name, id, err)
	}
	return &in, nil
}

// getServer reads a server; a 404, or a deleted server, is an error
// wrapping provider.ErrNotFound.
func (p *Provider) getServer(ctx context.Context, id string) (wireServer, error) {
	var w wireServer
	err := p.do(ctx, "GetServer", retry.Idempotent, func(ctx context.Context) error {
		return servers.Get(ctx, p.client, id).ExtractIntoStructPtr(&w, "server")
	})
	switch {
	case err != nil:
		return w, err
	case gone(w.Status):
		return w, fmt.Errorf("%w: the server is %s", provider.ErrNotFound, w.Status)
	}
	return w, nil
}

// ListByPrefix implements provider.ComputeAPI with one listing (following
// servers_links), filtered by Nova with the name regex ^<prefix> (quoted)
// and here by the exact prefix; deleted and soft-deleted servers are left
// out. PortIDs are left empty: Nova lists no port ids, and asking for
// every server's interfaces would cost a request each (the instance
// manager takes empty PortIDs as "attachments not reported").
func (p *Provider) ListByPrefix(ctx context.Context, prefix string) ([]provider.Instance, error) {
	var opts servers.ListOpts
	if prefix != "" {
		opts.Name = "^" + regexp.QuoteMeta(prefix)
	}
	var ws []wireServer
	err := p.do(ctx, "ListServers", retry.Idempotent, func(ctx context.Context) error {
		page, err := servers.List(p.client, opts).AllPages(ctx)
		if err != nil {
			return err
		}
		ws = nil
		return servers.ExtractServersInto(page, &ws)
	})
	if err != nil {
		return nil, fmt.Errorf("listing the servers named %s*: %w", prefix, err)
	}
	var out []provider.Instance
	for _, w := range ws {
		if strings.HasPrefix(w.Name, prefix) && !gone(w.Status) {
			out = append(out, p.instance(ctx, w))
		}
	}
	return out, nil
}

// Delete implements provider.ComputeAPI; a server already gone (404) is
// not an error. Nova deletes asynchronously: see DeleteAndWait.
func (p *Provider) Delete(ctx context.Context, id string) error {
	if err := checkID("server", id); err != nil {
		return fmt.Errorf("deleting server: %w", err)
	}
	err := p.do(ctx, "DeleteServer", retry.Idempotent, func(ctx context.Context) error {
		return servers.Delete(ctx, p.client, id).ExtractErr()
	})
	switch {
	case is404(err):
		p.log.DebugContext(ctx, "server already deleted", "instance_id", id)
	case err != nil:
		return fmt.Errorf("deleting server %s: %w", id, err)
	default:
		p.log.InfoContext(ctx, "server deleted", "instance_id", id)
	}
	return nil
}

// DeleteAndWait deletes a server, then reads it every `every` (PollInterval
// if not positive) until Nova no longer has it; ctx bounds the wait.
func (p *Provider) DeleteAndWait(ctx context.Context, id string, every time.Duration) error {
	if err := p.Delete(ctx, id); err != nil {
		return err
	}
	if every <= 0 {
		every = p.opts.PollInterval
	}
	err := poll(ctx, every, func(ctx context.Context) (bool, error) {
		_, err := p.getServer(ctx, id)
		if errors.Is(err, provider.ErrNotFound) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("waiting for server %s to be deleted: %w", id, err)
	}
	return nil
}
