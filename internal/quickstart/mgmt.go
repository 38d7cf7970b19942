package quickstart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Resource is what the orchestrator's management API says of a resource
// (GET /resources/{id}), in part.
type Resource struct {
	State    string `json:"state"`
	Instance string `json:"instance_state"`
	Status   string `json:"status"`
}

// ManagedResource reads a resource from the management API at base
// (http://host:port); found is false when the orchestrator does not
// manage it.
func ManagedResource(ctx context.Context, base, id string) (r Resource, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/resources/"+url.PathEscape(id), nil)
	if err != nil {
		return r, false, fmt.Errorf("management API: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, false, fmt.Errorf("management API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return r, false, fmt.Errorf("management API: GET /resources/%s: %w", id, err)
	case resp.StatusCode == http.StatusNotFound:
		return r, false, nil
	case resp.StatusCode != http.StatusOK:
		return r, false, fmt.Errorf("management API: GET /resources/%s: %s: %s", id, resp.Status, body)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, false, fmt.Errorf("management API: GET /resources/%s: %w", id, err)
	}
	return r, true, nil
}

// WaitManagedStatus waits until the management API shows the resource
// with status.
func WaitManagedStatus(ctx context.Context, base, id, status string) (Resource, error) {
	var r Resource
	err := Wait(ctx, "status "+status+" of "+id+" in the management API", func() error {
		got, found, err := ManagedResource(ctx, base, id)
		if err != nil {
			return err
		}
		r = got
		if !found || got.Status != status {
			return fmt.Errorf("%w: %+v (managed: %v)", ErrNotYet, got, found)
		}
		return nil
	})
	return r, err
}
