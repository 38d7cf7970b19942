package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"gopkg.in/ini.v1"
)

// iniOptions are the parser's settings for oslo.config's INI dialect: no
// inline comments (a '#' in a value is part of it), "=" or ":" between name
// and value, indented continuation lines, and no backslash continuation. A
// name repeated in a section keeps its last value; multiShadows reads the
// file again keeping every value, for multi-valued options (the parser
// then drops empty values).
var iniOptions = ini.LoadOptions{
	IgnoreInlineComment:        true,
	AllowPythonMultilineValues: true,
	IgnoreContinuation:         true,
	KeyValueDelimiters:         "=:",
}

func multiShadows() ini.LoadOptions {
	o := iniOptions
	o.AllowShadows, o.AllowDuplicateShadowValues = true, true
	return o
}

// keystoneGroup is the group whose options say that an OpenStack cloud is
// configured (its Keystone), not standalone mode.
const keystoneGroup = "keystone_authtoken"

// setting is the value an option was given, and where.
type setting struct {
	raw  []string
	file string
	as   optName // the name it was given under (a deprecated one, maybe)
}

// Load reads the configuration files in order: an option set in a later
// file overrides the earlier files (a multi-valued option collects the
// values of every file). Unknown options and deprecated names are logged
// on log (and kept in Config.Warnings). Every invalid value is reported,
// naming its file, group, option and value (a secret's value is not
// shown); then Load returns no configuration. Options no file sets have
// their default: in standalone mode (no [keystone_authtoken], and so
// without any file), their standalone default if they have one.
func Load(files []string, log *slog.Logger) (*Config, error) {
	return options.load(files, log)
}

func (sc schema) load(files []string, log *slog.Logger) (*Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := Default()
	c.Files = slices.Clone(files)
	settings := map[*option]*setting{}
	var errs []error
	for _, path := range files {
		if err := sc.readFile(c, path, settings, log); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.set = map[string]bool{}
	for _, o := range sc {
		s := settings[o]
		if s == nil {
			if o.standalone != "" && c.StandaloneMode() {
				if err := o.set(c, []string{o.standalone}); err != nil {
					errs = append(errs, fmt.Errorf("standalone default of %s: %w", o.optName, err))
				}
			}
			continue
		}
		c.set[o.optName.String()] = true
		if err := o.set(c, s.raw); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %s = %s: %w", s.file, s.as, o.show(last(s.raw)), err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	from := func(n optName) string {
		o, _ := sc.lookup(n.group, n.name)
		if s := settings[o]; s != nil {
			return "config file " + s.file
		}
		return "default value"
	}
	if err := c.validate(from); err != nil {
		return nil, err
	}
	return c, nil
}

// show formats a value for an error message.
func (o *option) show(v string) string {
	if o.secret {
		return "(secret)"
	}
	return fmt.Sprintf("%q", v)
}

// normalizeGroup returns a section's group name: DEFAULT, or the name in
// lower case, as oslo.config does.
func normalizeGroup(section string) string {
	if strings.EqualFold(section, DefaultGroup) {
		return DefaultGroup
	}
	return strings.ToLower(section)
}

// readFile reads one file into settings. Within a file, an option's
// current name wins over its deprecated names, wherever they appear.
func (sc schema) readFile(c *Config, path string, settings map[*option]*setting, log *slog.Logger) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	f, err := ini.LoadSources(iniOptions, data)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	var multi *ini.File // every value of repeated names, read when needed
	here := map[*option]*setting{}
	for _, sec := range f.Sections() {
		group := normalizeGroup(sec.Name())
		for _, k := range sec.Keys() {
			name := k.Name()
			if group == keystoneGroup && !slices.Contains(c.KeystoneOptions, name) {
				c.KeystoneOptions = append(c.KeystoneOptions, name)
			}
			o, deprecated := sc.lookup(group, name)
			if o == nil {
				c.unknown(log, path, optName{group, name})
				continue
			}
			vals := []string{k.Value()}
			if o.multi {
				if multi == nil {
					if multi, err = ini.LoadSources(multiShadows(), data); err != nil {
						return fmt.Errorf("config file %s: %w", path, err)
					}
				}
				vals = multi.Section(sec.Name()).Key(name).ValueWithShadows()
			}
			if deprecated {
				c.warn(log, fmt.Sprintf("config file %s: %s is deprecated: use %s", path, optName{group, name}, o.optName),
					"file", path, "group", group, "option", name)
				if here[o] != nil && here[o].as == o.optName {
					continue // the current name is set too: it wins
				}
			} else if s := here[o]; s != nil && s.as != o.optName {
				delete(here, o) // drop what a deprecated name set
			}
			if s := here[o]; s != nil {
				s.raw = append(s.raw, vals...)
				continue
			}
			here[o] = &setting{raw: slices.Clone(vals), file: path, as: optName{group, name}}
		}
	}
	for o, s := range here {
		if prev := settings[o]; prev != nil && o.multi {
			prev.raw = append(prev.raw, s.raw...)
			prev.file, prev.as = s.file, s.as
			continue
		}
		settings[o] = s
	}
	return nil
}

// unknown reports an option this orchestrator does not know.
func (c *Config) unknown(log *slog.Logger, path string, n optName) {
	if why, ok := unused[n.group][n.name]; ok {
		log.Info("configuration option not used by this orchestrator: ignored", "file", path, "group", n.group,
			"option", n.name, "see", why)
		return
	}
	if why, ok := unused[n.group][""]; ok {
		log.Info("configuration group not used by this orchestrator: ignored", "file", path, "group", n.group,
			"option", n.name, "see", why)
		return
	}
	c.warn(log, fmt.Sprintf("config file %s: unknown option %s: ignored", path, n), "file", path, "group", n.group, "option", n.name)
}

func (c *Config) warn(log *slog.Logger, msg string, attrs ...any) {
	c.Warnings = append(c.Warnings, msg)
	log.Warn(msg, attrs...)
}
