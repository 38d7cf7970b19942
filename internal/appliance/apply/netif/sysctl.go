package netif

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// sysctls reads and writes per-interface kernel settings; key is
// "<family>/<name>", e.g. "ipv6/accept_dad". A setting that does not exist
// (IPv6 disabled on the link) reads as "".
type sysctls interface {
	get(link, key string) (string, error)
	set(link, key, value string) error
}

// procSysctls uses /proc/sys/net of the calling process's network namespace.
type procSysctls struct{}

func sysctlPath(link, key string) (string, error) {
	family, name, ok := strings.Cut(key, "/")
	if !ok || link == "" || link == "." || link == ".." || strings.Contains(link, "/") {
		return "", fmt.Errorf("bad sysctl %q for link %q", key, link)
	}
	return path.Join("/proc/sys/net", family, "conf", link, name), nil
}

func (procSysctls) get(link, key string) (string, error) {
	p, err := sysctlPath(link, key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", p, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (procSysctls) set(link, key, value string) error {
	p, err := sysctlPath(link, key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

// EnableForwarding turns IPv4 and IPv6 forwarding on in the current network
// namespace, as a router needs; it writes nothing when already on.
func EnableForwarding() error {
	for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // IPv6 disabled
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if strings.TrimSpace(string(b)) == "1" {
			continue
		}
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enabling forwarding (%s): %w", p, err)
		}
	}
	return nil
}
