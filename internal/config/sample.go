package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteSample writes a commented sample configuration: every option,
// grouped, with its help, type, limits, deprecated names and default,
// commented out (as oslo-config-generator writes them). Uncommenting a
// line leaves the configuration as it was.
func WriteSample(w io.Writer) error { return options.writeSample(w) }

func (sc schema) writeSample(w io.Writer) error {
	b := bufio.NewWriter(w)
	fmt.Fprintln(b, "# Sample configuration of astara-orchestrator.")
	fmt.Fprintln(b, "#")
	fmt.Fprintln(b, "# Give it with --config-file (repeatable: later files override earlier")
	fmt.Fprintln(b, "# ones). Every option is commented out with its default value.")
	fmt.Fprintln(b, "#")
	fmt.Fprintln(b, "# Without a [keystone_authtoken] section (or without any file), the")
	fmt.Fprintln(b, "# orchestrator runs in standalone mode: it serves the network API itself")
	fmt.Fprintln(b, "# and runs appliances in network namespaces of this machine (see")
	fmt.Fprintln(b, "# [standalone]); the options marked \"Standalone mode default\" then")
	fmt.Fprintln(b, "# default to that value instead.")
	d := Default()
	var groups []string
	seen := map[string]bool{}
	for _, o := range sc {
		if !seen[o.group] {
			seen[o.group] = true
			groups = append(groups, o.group)
		}
	}
	for _, g := range groups {
		fmt.Fprintf(b, "\n[%s]\n", g)
		for _, o := range sc {
			if o.group != g {
				continue
			}
			fmt.Fprintln(b)
			help := o.help + " (" + string(o.kind) + ")"
			for _, line := range wrap(help, 70) {
				fmt.Fprintf(b, "# %s\n", line)
			}
			if o.limits != "" {
				fmt.Fprintf(b, "# %s\n", o.limits)
			}
			if o.standalone != "" {
				fmt.Fprintf(b, "# Standalone mode default: %s\n", o.standalone)
			}
			for _, dep := range o.deprecated {
				fmt.Fprintf(b, "# Deprecated group/name - [%s]/%s\n", dep.group, dep.name)
			}
			for _, v := range o.sampleValues(d) {
				if v == "" {
					fmt.Fprintf(b, "#%s =\n", o.name)
				} else {
					fmt.Fprintf(b, "#%s = %s\n", o.name, v)
				}
			}
		}
	}
	return b.Flush()
}

// sampleValues returns the lines of the option's default in the sample.
func (o *option) sampleValues(d *Config) []string {
	if o.sample != "" {
		return []string{o.sample}
	}
	v := o.get(d)
	if o.multi {
		if v == "" {
			return []string{""}
		}
		return strings.Split(v, "\n")
	}
	return []string{v}
}

// wrap splits s into lines of at most width bytes, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
