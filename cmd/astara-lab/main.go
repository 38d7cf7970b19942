// Command astara-lab runs a real Astara router appliance in network
// namespaces on this machine, with two VMs and an upstream host, and shows
// it routing, NATing and serving DHCP.
//
//	astara-lab up -agent ./bin/astara-appliance
//	astara-lab down
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/astara-go/astara/internal/appliance/lab"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "astara-lab: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: astara-lab up -agent PATH | down")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (it creates network namespaces)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch args[0] {
	case "up":
		fs := flag.NewFlagSet("up", flag.ContinueOnError)
		agent := fs.String("agent", "astara-appliance", "path of the astara-appliance binary")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return lab.Up(ctx, *agent, os.Stdout)
	case "down":
		return lab.Down(os.Stdout)
	}
	return fmt.Errorf("unknown command %q (want up or down)", args[0])
}
