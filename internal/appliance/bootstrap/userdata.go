package bootstrap

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxUserData bounds the user data read (Nova allows 64 KiB).
const maxUserData = 1 << 20

// configureCommands are the names the management command ran under.
var configureCommands = []string{"astara-configure-management", "akanda-configure-management"}

// ParseUserData reads the management interface from user data: the JSON form
// {"astara": {"management": {"mac", "address", "mtu"}}} or a cloud-config
// whose bootcmd runs astara-configure-management (gzip-compressed user data
// is accepted too). The result is validated; errors name the field.
func ParseUserData(b []byte) (Management, error) {
	b, err := maybeGunzip(b)
	if err != nil {
		return Management{}, fmt.Errorf("user data: %w", err)
	}
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	trimmed := bytes.TrimSpace(b)
	var m Management
	switch {
	case len(trimmed) == 0:
		return Management{}, errors.New("user data: empty")
	case trimmed[0] == '{':
		m, err = parseJSON(trimmed)
	default:
		m, err = parseCloudConfig(string(b))
	}
	if err != nil {
		return Management{}, fmt.Errorf("user data: %w", err)
	}
	return m, nil
}

// FromConfigDrive reads the management interface from the user data of a
// mounted OpenStack config drive, <dir>/openstack/latest/user_data.
func FromConfigDrive(dir string) (Management, error) {
	path := filepath.Join(dir, "openstack", "latest", "user_data")
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Management{}, fmt.Errorf("config drive %s: no user data (%s): the orchestrator passes the management port there", dir, path)
		}
		return Management{}, fmt.Errorf("config drive: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUserData+1))
	if err != nil {
		return Management{}, fmt.Errorf("config drive: reading %s: %w", path, err)
	}
	if len(b) > maxUserData {
		return Management{}, fmt.Errorf("config drive: %s is larger than %d bytes", path, maxUserData)
	}
	m, err := ParseUserData(b)
	if err != nil {
		return Management{}, fmt.Errorf("config drive: %s: %w", path, err)
	}
	return m, nil
}

func maybeGunzip(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxUserData+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > maxUserData {
		return nil, fmt.Errorf("gzip: more than %d bytes uncompressed", maxUserData)
	}
	return out, nil
}

// parseJSON reads {"astara": {"management": {...}}}. Keys outside "astara"
// are left to other consumers; keys inside "management" must be known.
func parseJSON(b []byte) (Management, error) {
	var top struct {
		Astara json.RawMessage `json:"astara"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		return Management{}, fmt.Errorf("invalid JSON: %w", err)
	}
	if isNull(top.Astara) {
		return Management{}, errors.New("astara: required")
	}
	var astara struct {
		Management json.RawMessage `json:"management"`
	}
	if err := json.Unmarshal(top.Astara, &astara); err != nil {
		return Management{}, fmt.Errorf("astara: must be an object: %w", err)
	}
	if isNull(astara.Management) {
		return Management{}, errors.New("astara.management: required")
	}
	var w struct {
		MAC     *string         `json:"mac"`
		Address *string         `json:"address"`
		MTU     json.RawMessage `json:"mtu"`
	}
	dec := json.NewDecoder(bytes.NewReader(astara.Management))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Management{}, fmt.Errorf("astara.management.%s: must be a %s, not %s", te.Field, te.Type, te.Value)
		}
		return Management{}, fmt.Errorf("astara.management: %w", err)
	}
	const prefix = "astara.management."
	var m Management
	var err error
	if w.MAC == nil {
		return Management{}, errors.New(prefix + "mac: required")
	}
	if m.MAC, err = parseMAC(*w.MAC); err != nil {
		return Management{}, fmt.Errorf(prefix+"mac: %w", err)
	}
	if w.Address == nil {
		return Management{}, errors.New(prefix + "address: required")
	}
	if m.Address, err = parseAddress(*w.Address); err != nil {
		return Management{}, fmt.Errorf(prefix+"address: %w", err)
	}
	if !isNull(w.MTU) {
		if m.MTU, err = parseMTU(string(w.MTU), m.Address); err != nil {
			return Management{}, fmt.Errorf(prefix+"mtu: %w", err)
		}
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// parseCloudConfig finds astara-configure-management in the bootcmd of a
// cloud-config and reads its arguments.
func parseCloudConfig(doc string) (Management, error) {
	items, err := bootcmd(doc)
	if err != nil {
		return Management{}, err
	}
	for _, it := range items {
		if args, ok := findCommand(it); ok {
			m, err := parseLegacyArgs(args)
			if err != nil {
				return Management{}, fmt.Errorf("bootcmd: %s: %w", configureCommands[0], err)
			}
			return m, nil
		}
	}
	return Management{}, fmt.Errorf("bootcmd: no %s command", configureCommands[0])
}

// findCommand returns the arguments of the configure command in one bootcmd
// item: a list (argv, possibly a shell -c script) or a shell string.
func findCommand(it node) ([]string, bool) {
	if !it.isList {
		return findInScript(it.scalar)
	}
	argv := make([]string, 0, len(it.list))
	for _, n := range it.list {
		if n.isList {
			return nil, false // not an argv
		}
		argv = append(argv, n.scalar)
	}
	for i, a := range argv {
		if isConfigureCommand(a) {
			return argv[i+1:], true
		}
	}
	for _, a := range argv { // e.g. [sh, -c, "astara-configure-management ..."]
		if args, ok := findInScript(a); ok {
			return args, true
		}
	}
	return nil, false
}

func findInScript(script string) ([]string, bool) {
	if !strings.Contains(script, "configure-management") {
		return nil, false
	}
	for _, cmd := range shellCommands(script) {
		for i, w := range cmd {
			if isConfigureCommand(w) {
				return cmd[i+1:], true
			}
		}
	}
	return nil, false
}

func isConfigureCommand(word string) bool {
	base := word[strings.LastIndexByte(word, '/')+1:]
	for _, c := range configureCommands {
		if base == c {
			return true
		}
	}
	return false
}

// parseLegacyArgs reads "<MAC> <IP>/<prefix> [--mtu N]" the way the original
// command line did, including its default MTU.
func parseLegacyArgs(args []string) (Management, error) {
	var pos []string
	mtu := strconv.Itoa(LegacyDefaultMTU)
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--mtu":
			if i+1 >= len(args) {
				return Management{}, errors.New("mtu: --mtu needs a value")
			}
			i++
			mtu = args[i]
		case strings.HasPrefix(a, "--mtu="):
			mtu = strings.TrimPrefix(a, "--mtu=")
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			return Management{}, fmt.Errorf("unknown option %q", a)
		default:
			pos = append(pos, a)
		}
	}
	switch {
	case len(pos) < 1:
		return Management{}, errors.New("mac: required (first argument)")
	case len(pos) < 2:
		return Management{}, errors.New("address: required (second argument, address/prefix-length)")
	case len(pos) > 2:
		return Management{}, fmt.Errorf("unexpected argument %q", pos[2])
	}
	var m Management
	var err error
	if m.MAC, err = parseMAC(pos[0]); err != nil {
		return Management{}, fmt.Errorf("mac: %w", err)
	}
	if m.Address, err = parseAddress(pos[1]); err != nil {
		return Management{}, fmt.Errorf("address: %w", err)
	}
	if m.MTU, err = parseMTU(mtu, m.Address); err != nil {
		return Management{}, fmt.Errorf("mtu: %w", err)
	}
	return m, nil
}

func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a MAC address (aa:bb:cc:dd:ee:ff)", s)
	}
	if err := checkMAC(mac); err != nil {
		return nil, err
	}
	return mac, nil
}

func parseAddress(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("required, as address/prefix-length")
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address/prefix-length", s)
	}
	if err := checkAddress(p); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

func parseMTU(s string, addr netip.Prefix) (int, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	if err := checkMTU(int(n), addr); err != nil {
		return 0, err
	}
	return int(n), nil
}
