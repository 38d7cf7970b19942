package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kind is an option's type, as the sample names it.
type kind string

const (
	kindString  kind = "string value"
	kindInt     kind = "integer value"
	kindBool    kind = "boolean value"
	kindList    kind = "list value"
	kindMulti   kind = "multi valued"
	kindSeconds kind = "number of seconds"
	kindPort    kind = "port value"
	kindAddr    kind = "IP address value"
	kindPrefix  kind = "CIDR value"
)

// optName names an option: its group ("DEFAULT" or a lower-case group
// name) and its name.
type optName struct{ group, name string }

func (n optName) String() string { return "[" + n.group + "] " + n.name }

// option describes one configuration option: how to parse it into a
// Config, how to print it, and its documentation.
type option struct {
	optName
	kind       kind
	help       string
	deprecated []optName // older names, still accepted with a warning
	secret     bool      // never printed
	multi      bool      // every value given is kept (MultiStrOpt)
	sample     string    // printed in the sample instead of the default
	// standalone, when set, is the option's default in standalone mode
	// (Config.StandaloneMode), where the original's defaults are too slow
	// for one machine.
	standalone string
	limits     string // printed in the sample, e.g. "Minimum value: 1"
	// set parses the raw values (the last one, or all for a multi option)
	// into c; the error describes the value, not where it came from.
	set func(c *Config, raw []string) error
	// get formats the option's value in c as it is written in a file.
	get func(c *Config) string
}

// mod adjusts an option being declared.
type mod func(o *option)

// deprecatedName accepts an older group and name for the option.
func deprecatedName(group, name string) mod {
	return func(o *option) { o.deprecated = append(o.deprecated, optName{group, name}) }
}

// secret keeps the option's value out of errors, logs and the sample.
func secret() mod { return func(o *option) { o.secret = true } }

// sampleDefault shows s as the default in the sample (for defaults that
// depend on the machine).
func sampleDefault(s string) mod { return func(o *option) { o.sample = s } }

// standaloneDefault makes v (as written in a file) the option's default in
// standalone mode.
func standaloneDefault(v string) mod { return func(o *option) { o.standalone = v } }

func declare(group, name string, k kind, help string, mods []mod) *option {
	o := &option{optName: optName{group, name}, kind: k, help: help}
	for _, m := range mods {
		m(o)
	}
	return o
}

// last returns the value in effect: the last one given ("" if none).
func last(raw []string) string {
	if len(raw) == 0 {
		return ""
	}
	return raw[len(raw)-1]
}

func strOpt(group, name string, field func(*Config) *string, help string, mods ...mod) *option {
	o := declare(group, name, kindString, help, mods)
	o.set = func(c *Config, raw []string) error {
		*field(c) = last(raw)
		return nil
	}
	o.get = func(c *Config) string { return *field(c) }
	return o
}

// choiceOpt is a string option taking one of choices.
func choiceOpt(group, name string, field func(*Config) *string, choices []string, help string, mods ...mod) *option {
	o := strOpt(group, name, field, help, mods...)
	o.limits = "Allowed values: " + strings.Join(choices, ", ")
	o.set = func(c *Config, raw []string) error {
		v := last(raw)
		if !slices.Contains(choices, v) {
			return fmt.Errorf("must be one of %s", strings.Join(choices, ", "))
		}
		*field(c) = v
		return nil
	}
	return o
}

// integer is what numeric options hold.
type integer interface {
	~int | ~uint16 | ~uint32
}

func numOpt[T integer](group, name string, k kind, field func(*Config) *T, lo, hi int64, help string, mods ...mod) *option {
	o := declare(group, name, k, help, mods)
	switch {
	case k == kindPort:
	case hi == maxInt:
		o.limits = fmt.Sprintf("Minimum value: %d", lo)
	default:
		o.limits = fmt.Sprintf("Minimum value: %d, maximum value: %d", lo, hi)
	}
	o.set = func(c *Config, raw []string) error {
		v, err := strconv.ParseInt(strings.TrimSpace(last(raw)), 10, 64)
		if err != nil {
			return errors.New("not an integer")
		}
		if v < lo || v > hi {
			if hi == maxInt {
				return fmt.Errorf("must be at least %d", lo)
			}
			return fmt.Errorf("must be between %d and %d", lo, hi)
		}
		*field(c) = T(v)
		return nil
	}
	o.get = func(c *Config) string { return strconv.FormatInt(int64(*field(c)), 10) }
	return o
}

const maxInt = int64(^uint32(0) >> 1)

func intOpt(group, name string, field func(*Config) *int, lo int64, help string, mods ...mod) *option {
	return numOpt(group, name, kindInt, field, lo, maxInt, help, mods...)
}

func portOpt(group, name string, field func(*Config) *uint16, help string, mods ...mod) *option {
	return numOpt(group, name, kindPort, field, 1, 65535, help, mods...)
}

func asnOpt(group, name string, field func(*Config) *uint32, help string, mods ...mod) *option {
	return numOpt(group, name, kindInt, field, 1, 4294967295, help, mods...)
}

// ParseBool parses a boolean as oslo.config does: true/false, yes/no,
// on/off, 1/0, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, errors.New("not a boolean (true/false, yes/no, on/off, 1/0)")
}

func boolOpt(group, name string, field func(*Config) *bool, help string, mods ...mod) *option {
	o := declare(group, name, kindBool, help, mods)
	o.set = func(c *Config, raw []string) error {
		v, err := ParseBool(last(raw))
		if err != nil {
			return err
		}
		*field(c) = v
		return nil
	}
	o.get = func(c *Config) string {
		if *field(c) {
			return "true"
		}
		return "false"
	}
	return o
}

// ParseSeconds parses a duration written as a number of seconds, which
// may have a fractional part ("60", "0.5").
func ParseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != f {
		return 0, errors.New("not a number of seconds")
	}
	if f < 0 || f > float64(1<<63-1)/float64(time.Second) {
		return 0, errors.New("out of range")
	}
	return time.Duration(f * float64(time.Second)), nil
}

// FormatSeconds writes d as ParseSeconds reads it.
func FormatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func secondsOpt(group, name string, field func(*Config) *time.Duration, min time.Duration, help string, mods ...mod) *option {
	o := declare(group, name, kindSeconds, help, mods)
	if min > 0 {
		o.limits = "Minimum value: " + FormatSeconds(min)
	}
	o.set = func(c *Config, raw []string) error {
		d, err := ParseSeconds(last(raw))
		if err != nil {
			return err
		}
		if d < min {
			return fmt.Errorf("must be at least %s seconds", FormatSeconds(min))
		}
		*field(c) = d
		return nil
	}
	o.get = func(c *Config) string { return FormatSeconds(*field(c)) }
	return o
}

// ParseList splits a list value at commas, trimming spaces and dropping
// empty items; surrounding brackets are allowed, as oslo.config allows.
func ParseList(s string) []string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func listOpt(group, name string, field func(*Config) *[]string, help string, mods ...mod) *option {
	o := declare(group, name, kindList, help, mods)
	o.set = func(c *Config, raw []string) error {
		*field(c) = ParseList(last(raw))
		return nil
	}
	o.get = func(c *Config) string { return strings.Join(*field(c), ",") }
	return o
}

// multiOpt is a MultiStrOpt: the option may be given several times, in
// one file or in several, and every value is kept, in order.
func multiOpt(group, name string, field func(*Config) *[]string, help string, mods ...mod) *option {
	o := declare(group, name, kindMulti, help, mods)
	o.multi = true
	o.set = func(c *Config, raw []string) error {
		*field(c) = slices.Clone(raw)
		return nil
	}
	o.get = func(c *Config) string { return strings.Join(*field(c), "\n") }
	return o
}

func addrOpt(group, name string, field func(*Config) *netip.Addr, help string, mods ...mod) *option {
	o := declare(group, name, kindAddr, help, mods)
	o.set = func(c *Config, raw []string) error {
		s := strings.TrimSpace(last(raw))
		if s == "" {
			*field(c) = netip.Addr{}
			return nil
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return errors.New("not an IP address")
		}
		*field(c) = a
		return nil
	}
	o.get = func(c *Config) string {
		if a := *field(c); a.IsValid() {
			return a.String()
		}
		return ""
	}
	return o
}

func prefixOpt(group, name string, field func(*Config) *netip.Prefix, help string, mods ...mod) *option {
	o := declare(group, name, kindPrefix, help, mods)
	o.set = func(c *Config, raw []string) error {
		p, err := netip.ParsePrefix(strings.TrimSpace(last(raw)))
		if err != nil {
			return errors.New("not a CIDR (address/prefix length)")
		}
		*field(c) = p
		return nil
	}
	o.get = func(c *Config) string { return field(c).String() }
	return o
}
