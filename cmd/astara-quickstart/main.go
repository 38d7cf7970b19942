// Command astara-quickstart runs Astara's standalone mode on this machine
// and shows a tenant network routed, NATed and served DHCP by a real
// appliance: it starts astara-orchestrator in the background, makes an
// external network, a tenant network, a router, two VMs (network
// namespaces) and a floating IP through the network API, and checks them
// with real traffic. It leaves everything running; "down" removes it all.
//
//	astara-quickstart up [-dir DIR]
//	astara-quickstart down [-dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/astara-go/astara/internal/quickstart"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "astara-quickstart: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return fmt.Errorf("usage: astara-quickstart up|down [-dir DIR]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", quickstart.DefaultDir, "where the orchestrator's configuration, log and state go")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (it creates network namespaces and bridges)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := quickstart.Options{Dir: *dir, Out: os.Stdout}
	if args[0] == "up" {
		return quickstart.Up(ctx, opts)
	}
	return quickstart.Down(ctx, opts)
}
