package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/scheduler"
	"github.com/astara-go/astara/internal/state/statetest"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// The orchestrator's process wires the scheduler to the store and the
// instance managers; the intake calls Dispatch; the management API calls
// Command and the status methods.
func Example() {
	dir, err := os.MkdirTemp("", "astara-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := store.Open(dir) // the state directory
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close() // after Stop

	s, err := scheduler.New(scheduler.Options{
		Workers: scheduler.DefaultWorkers,
		Worker:  worker.DefaultConfig(),
		// In the orchestrator: &instance.Factory{...}.
		Factory: statetest.NewFleet(statetest.Model{Instance: true, Configured: true}),
		Store:   db,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil { // replays pending work
		log.Fatal(err)
	}

	// The intake acknowledges a notification once Dispatch returned nil.
	r1 := event.Resource{Driver: event.DriverRouter, ID: "r1", TenantID: "tenant-1"}
	if err := s.Dispatch(ctx, event.Event{Resource: r1, Action: event.Create}); err != nil {
		log.Fatal(err)
	}

	// The management API.
	err = s.Command(ctx, event.CommandArgs{Name: event.CmdResourceDebug, ResourceID: "r1", Reason: "looking at its NAT"})
	fmt.Println(err, s.DebugModes().Resources["r1"].Reason)
	err = s.Command(ctx, event.CommandArgs{Name: event.CmdResourceRebuild, ResourceID: "unknown"})
	fmt.Println(errors.Is(err, scheduler.ErrNotManaged))
	err = s.Command(ctx, event.CommandArgs{Name: event.CmdTenantDebug, TenantID: event.All})
	fmt.Println(errors.Is(err, scheduler.ErrInvalid))
	fmt.Println(len(s.Workers()), "workers")

	if err := s.Stop(ctx); err != nil { // finishes or records pending work
		log.Fatal(err)
	}
	// Output:
	// <nil> looking at its NAT
	// true
	// true
	// 16 workers
}
