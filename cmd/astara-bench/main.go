// Command astara-bench runs Astara's benchmarks and prints their numbers
// next to a baseline measured in the same run.
//
//	astara-bench appliance-fips [-sizes 10,100,1000,10000]
//	astara-bench orchestrator-intake [-duration 3s]
//	astara-bench orchestrator-memory [-resources 100000] [-workers 16]
//	astara-bench standalone-routers [-routers 20]
//
// orchestrator-memory measures the heap the orchestrator's workers use per
// managed resource (target <= 2 KiB), against a naive design.
//
// standalone-routers runs standalone mode in this process and times router
// create → first packet forwarded (target p95 < 1 s) and dead appliance →
// repaired and forwarding (target p95 < 5 s), against the original's
// timing defaults (see internal/bench).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/astara-go/astara/internal/appliance/bench"
	sbench "github.com/astara-go/astara/internal/bench"
	"github.com/astara-go/astara/internal/intake"
	"github.com/astara-go/astara/internal/scheduler"
	"github.com/astara-go/astara/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "astara-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) >= 4 && args[0] == bench.InnerFlag {
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return fmt.Errorf("inner: bad size %q", args[2])
		}
		return bench.Inner(ctx, args[1], n, args[3])
	}
	if len(args) > 0 && args[0] == "orchestrator-intake" {
		return runIntake(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "orchestrator-memory" {
		return orchestratorMemory(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "standalone-routers" {
		return standaloneRouters(ctx, args[1:])
	}
	if len(args) == 0 || args[0] != "appliance-fips" {
		return fmt.Errorf("usage: astara-bench appliance-fips [-sizes 10,100,1000,10000] | orchestrator-intake [-duration 3s] | orchestrator-memory [-resources 100000] [-workers 16] | standalone-routers [-routers 20]")
	}
	fs := flag.NewFlagSet("appliance-fips", flag.ContinueOnError)
	sizesFlag := fs.String("sizes", "10,100,1000,10000", "comma-separated numbers of floating IPs")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 60000 {
			return fmt.Errorf("-sizes: %q is not a number of floating IPs (1..60000)", s)
		}
		sizes = append(sizes, n)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (it creates network namespaces)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	rows, err := bench.RunFIP(ctx, self, sizes)
	if err != nil {
		return err
	}
	bench.Print(os.Stdout, bench.Machine(), rows)
	return nil
}

func runIntake(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("orchestrator-intake", flag.ContinueOnError)
	d := fs.Duration("duration", 3*time.Second, "how long each measurement runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *d <= 0 {
		return fmt.Errorf("-duration: %v is not positive", *d)
	}
	r, err := intake.RunBench(ctx, *d)
	if err != nil {
		return err
	}
	r.Print(os.Stdout, bench.Machine())
	return nil
}

func orchestratorMemory(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("orchestrator-memory", flag.ContinueOnError)
	resources := fs.Int("resources", 100000, "resources to bring under management")
	workers := fs.Int("workers", scheduler.DefaultWorkers, "workers (shards) to spread them over")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *resources < 1 || *resources > 10000000 || *workers < 1 || *workers > 1024 {
		return fmt.Errorf("-resources must be 1..10000000 and -workers 1..1024")
	}
	r, err := worker.MeasureMemory(ctx, *resources, *workers)
	if err != nil {
		return fmt.Errorf("orchestrator-memory: %w", err)
	}
	r.Print(os.Stdout, bench.Machine())
	return nil
}

func standaloneRouters(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("standalone-routers", flag.ContinueOnError)
	routers := fs.Int("routers", sbench.DefaultRouters, "routers made one at a time (and as many at once) in our system")
	baseline := fs.Int("baseline-routers", 0, "routers made one at a time (and at once) in the baseline system (default -routers)")
	concurrent := fs.Bool("concurrent", true, "also make -routers routers at once")
	shared := fs.Bool("shared-tenant", false, "every router in one project (default: a project per router)")
	hung := fs.Int("hung", 0, "appliances made unresponsive at once in each system, found by the health poll (default 3, at most -routers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (it creates network namespaces and bridges)")
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	r, err := sbench.RunStandalone(ctx, sbench.StandaloneOptions{Routers: *routers, BaselineRouters: *baseline,
		Concurrent: *concurrent, SharedTenant: *shared, Hung: *hung, Progress: os.Stderr})
	if err != nil {
		return fmt.Errorf("standalone-routers: %w", err)
	}
	r.Print(os.Stdout, bench.Machine())
	return nil
}
