// Package event defines what flows through the orchestrator: a normalized
// Event naming a Resource and an Action. Every event is a trigger, not a
// payload to trust: the worker re-reads the resource from the network API
// before acting on it.
package event

import (
	"fmt"
	"strings"
)

// Action is what an event asks of a resource's state machine.
type Action uint8

// The actions, as in the original (astara/event.py).
const (
	None           Action = iota
	Create                // the resource was created
	Read                  // read statistics (reserved)
	Update                // the resource (or something it depends on) changed
	Delete                // the resource was deleted
	Poll                  // periodic health check
	Command               // an operator command (see Command)
	Rebuild               // replace the service instance
	Rebalance             // cluster membership changed
	ClusterRebuild        // backfill a degraded HA pair
)

var actionNames = [...]string{"none", "create", "read", "update", "delete", "poll", "command", "rebuild", "rebalance", "cluster_rebuild"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction returns the Action named s (as String prints it).
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), nil
		}
	}
	return None, fmt.Errorf("unknown action %q", s)
}

// MarshalText encodes the action by name.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes an action name.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Wildcards usable as a resource id or tenant: All reaches every resource;
// Errored reaches the resources in ERROR.
const (
	All     = "*"
	Errored = "error"
)

// IsWildcard reports whether id is All or Errored.
func IsWildcard(id string) bool { return id == All || id == Errored }

// Resource identifies one managed resource.
type Resource struct {
	// Driver is the resource type: "router" (later "loadbalancer"), or All.
	Driver string `json:"driver"`
	// ID is the resource's Neutron id, a wildcard, or "" when the event
	// names only the tenant (resolved to the tenant's resource later).
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
}

func (r Resource) String() string { return r.Driver + "/" + r.ID }

// Event is one normalized event.
type Event struct {
	Resource Resource `json:"resource"`
	Action   Action   `json:"action"`
	// Command is set when Action is Command, or carries the options of
	// operator-triggered updates and rebuilds (e.g. an image).
	Command *CommandArgs `json:"command,omitempty"`
	// Source says where the event came from, for logs and metrics:
	// the Neutron event type, "health", "populate", "api", ...
	Source string `json:"source,omitempty"`
}

func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", e.Action, e.Resource)
	if e.Command != nil {
		fmt.Fprintf(&b, " (%s)", e.Command.Name)
	}
	return b.String()
}

// CommandName is an operator command, as the original astara-ctl sent them.
type CommandName string

// The commands.
const (
	CmdPoll            CommandName = "poll"
	CmdWorkersDebug    CommandName = "workers-debug"
	CmdConfigReload    CommandName = "config-reload"
	CmdGlobalDebug     CommandName = "global-debug"
	CmdTenantDebug     CommandName = "tenant-debug"
	CmdTenantManage    CommandName = "tenant-manage"
	CmdResourceDebug   CommandName = "resource-debug"
	CmdResourceManage  CommandName = "resource-manage"
	CmdResourceUpdate  CommandName = "resource-update"
	CmdResourceRebuild CommandName = "resource-rebuild"
	// Deprecated router aliases of the resource commands.
	CmdRouterDebug   CommandName = "router-debug"
	CmdRouterManage  CommandName = "router-manage"
	CmdRouterUpdate  CommandName = "router-update"
	CmdRouterRebuild CommandName = "router-rebuild"
)

// CommandArgs is an operator command with its arguments.
type CommandArgs struct {
	Name       CommandName `json:"command"`
	ResourceID string      `json:"resource_id,omitempty"`
	TenantID   string      `json:"tenant_id,omitempty"`
	Reason     string      `json:"reason,omitempty"`
	// Enabled is the global-debug switch.
	Enabled bool `json:"enabled,omitempty"`
	// ImageID replaces the instance's image on a rebuild.
	ImageID string `json:"image_id,omitempty"`
}
