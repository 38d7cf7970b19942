// Command astara-orchestrator is Astara's control plane: it listens to the
// network's notifications, keeps a state machine per router, and boots,
// configures, health-checks, repairs and deletes the routers' appliances.
//
// Without [keystone_authtoken] (and so without any configuration file) it
// runs standalone mode: it serves the network API itself and runs the
// appliances in network namespaces of this machine (see standalone). With
// it, OpenStack mode: it manages the routers of a cloud's Neutron, and
// runs their appliances as Nova servers or on this machine (see cloud).
//
// Usage:
//
//	astara-orchestrator [--config-file FILE]... [--check-config | --print-sample-config | --version | --purge]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/astara-go/astara/internal/cloud"
	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/orchestrator"
	"github.com/astara-go/astara/internal/standalone"
)

// defaultConfigFile is read when no --config-file is given, as the
// original did.
const defaultConfigFile = "/etc/astara/orchestrator.ini"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// files is the repeatable --config-file flag.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(s string) error { *f = append(*f, s); return nil }

// run is the command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("astara-orchestrator", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var cfgFiles files
	flags.Var(&cfgFiles, "config-file", "a configuration file; repeatable, later files override earlier ones (default "+defaultConfigFile+")")
	sample := flags.Bool("print-sample-config", false, "print a commented sample configuration with every option and its default, and exit")
	check := flags.Bool("check-config", false, "check the configuration files, and exit")
	version := flags.Bool("version", false, "print the version, and exit")
	purge := flags.Bool("purge", false, "standalone mode: remove every appliance, bridge and the state directory "+
		"(stop the orchestrator first), and exit")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "astara-orchestrator: unexpected argument %q\n", flags.Arg(0))
		return 2
	}
	switch {
	case *version:
		fmt.Fprintln(stdout, "astara-orchestrator", versionString())
		return 0
	case *sample:
		if err := config.WriteSample(stdout); err != nil {
			fmt.Fprintf(stderr, "astara-orchestrator: %v\n", err)
			return 1
		}
		return 0
	}

	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if len(cfgFiles) == 0 {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			cfgFiles = files{defaultConfigFile}
		} else if !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "astara-orchestrator: %v\n", err)
			return 1
		}
		// No file: standalone mode with its defaults.
	}
	cfg, err := config.Load(cfgFiles, log)
	if err != nil {
		fmt.Fprintf(stderr, "astara-orchestrator: invalid configuration:\n%v\n", err)
		return 1
	}
	if cfg.Debug {
		level.Set(slog.LevelDebug)
	}
	if *purge {
		if !cfg.StandaloneMode() {
			fmt.Fprintln(stderr, "astara-orchestrator: --purge: [keystone_authtoken] is configured: not standalone mode")
			return 2
		}
		if err := standalone.Purge(ctx, cfg, log); err != nil {
			fmt.Fprintf(stderr, "astara-orchestrator: %v\n", err)
			return 1
		}
		return 0
	}
	if cfg.StandaloneMode() {
		err = standalone.Check(cfg) // first: it says which options standalone mode ignores
	} else {
		err = cloud.Check(cfg)
	}
	err = errors.Join(err, orchestrator.Check(cfg))
	if err != nil {
		fmt.Fprintf(stderr, "astara-orchestrator: invalid configuration:\n%v\n", err)
		return 1
	}
	if *check {
		fmt.Fprintf(stdout, "configuration OK (%s; %s; %d warnings)\n", describeFiles(cfg.Files), mode(cfg), len(cfg.Warnings))
		return 0
	}
	if cfg.StandaloneMode() {
		return runStandalone(ctx, cfg, log, level, stderr)
	}

	s, err := cloud.Open(ctx, cfg, cloud.Options{Logger: log, LogLevel: level})
	if err != nil {
		fmt.Fprintf(stderr, "astara-orchestrator: %v\n", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		log.Error("astara-orchestrator failed", "err", err)
		return 1
	}
	return 0
}

// runStandalone runs standalone mode until ctx ends; it returns the exit
// status.
func runStandalone(ctx context.Context, cfg *config.Config, log *slog.Logger, level *slog.LevelVar, stderr io.Writer) int {
	s, err := standalone.Open(ctx, cfg, standalone.Options{Logger: log, LogLevel: level})
	if err != nil {
		fmt.Fprintf(stderr, "astara-orchestrator: %v\n", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		log.Error("astara-orchestrator failed", "err", err)
		return 1
	}
	return 0
}

// describeFiles names the configuration files, or says there are none.
func describeFiles(files []string) string {
	if len(files) == 0 {
		return "no configuration file"
	}
	return strings.Join(files, ", ")
}

// mode names the mode the configuration describes.
func mode(cfg *config.Config) string {
	if cfg.StandaloneMode() {
		return "standalone mode"
	}
	return "OpenStack mode, compute provider " + cfg.ComputeProvider
}

// versionString returns the module version and the Go version.
func versionString() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	return v + " " + runtime.Version()
}
