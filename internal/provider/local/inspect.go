package local

import (
	"log/slog"
	"time"
)

// Info is an instance as its state directory records it.
type Info struct {
	ID, Name  string
	Namespace string
	// PID is the agent's process: 0 until it runs; it may have exited.
	PID     int
	Created time.Time
	// LogFile is the agent's log.
	LogFile string
	// Ports are the instance's ports, management first.
	Ports []PortInfo
}

// PortInfo is one port of an instance.
type PortInfo struct {
	ID, NetworkID, MAC string
	// Device is its name in the namespace (ethN); HostDevice the name of
	// its peer on Bridge.
	Device, HostDevice, Bridge string
}

// ReadInstances returns the instances recorded in the state directory
// stateDir, in boot order, for tools that look at them from outside the
// provider (the demo, tests, benchmarks): it neither takes the directory
// nor changes anything, so a Compute of another process may hold it.
func ReadInstances(stateDir string) ([]Info, error) {
	c := &Compute{opts: Options{StateDir: stateDir}, log: slog.New(slog.DiscardHandler)}
	recs, err := c.records()
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(recs))
	for _, r := range recs {
		in := Info{ID: r.ID, Name: r.Name, Namespace: r.Namespace, PID: r.PID, Created: r.Created, LogFile: c.LogFile(r.ID)}
		for _, p := range r.Ports {
			in.Ports = append(in.Ports, PortInfo{ID: p.ID, NetworkID: p.NetworkID, MAC: p.MAC,
				Device: p.Device, HostDevice: p.HostDevice, Bridge: p.Bridge})
		}
		out = append(out, in)
	}
	return out, nil
}
