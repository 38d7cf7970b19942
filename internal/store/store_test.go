package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/astara-go/astara/internal/event"
)

func open(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func modes(t *testing.T, db *DB) DebugModes {
	t.Helper()
	dm, err := db.DebugModes()
	if err != nil {
		t.Fatal(err)
	}
	return dm
}

func TestDebugModes(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	if dm := modes(t, db); dm.Global != nil || len(dm.Tenants)+len(dm.Resources) != 0 {
		t.Fatalf("new database has debug modes: %+v", dm)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"global on", func() error { return db.EnableGlobalDebug("upgrade") }},
		{"global reason", func() error { return db.EnableGlobalDebug("upgrade, take 2") }},
		{"tenant on", func() error { return db.EnableTenantDebug("t1", "noisy") }},
		{"tenant 2 on", func() error { return db.EnableTenantDebug("t2", "") }},
		{"tenant 2 off", func() error { return db.DisableTenantDebug("t2") }},
		{"tenant never on, off", func() error { return db.DisableTenantDebug("t3") }},
		{"resource on", func() error { return db.EnableResourceDebug("r1", "looking at it") }},
		{"resource reason", func() error { return db.EnableResourceDebug("r1", "still looking") }},
		{"resource 2 on", func() error { return db.EnableResourceDebug("r2", "x") }},
		{"resource 2 off", func() error { return db.DisableResourceDebug("r2") }},
	}
	var since = map[string]string{}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		dm := modes(t, db)
		if dm.Global != nil {
			if old, ok := since["global"]; ok && old != dm.Global.Since.String() {
				t.Errorf("%s: global debug since changed from %s to %s", s.name, old, dm.Global.Since)
			}
			since["global"] = dm.Global.Since.String()
		}
	}
	check := func(dm DebugModes) {
		t.Helper()
		if dm.Global == nil || dm.Global.Reason != "upgrade, take 2" {
			t.Errorf("global %+v, want on with the updated reason", dm.Global)
		}
		if len(dm.Tenants) != 1 || dm.Tenants["t1"].Reason != "noisy" {
			t.Errorf("tenants %+v, want t1 (noisy)", dm.Tenants)
		}
		if len(dm.Resources) != 1 || dm.Resources["r1"].Reason != "still looking" || dm.Resources["r1"].Since.IsZero() {
			t.Errorf("resources %+v, want r1 (still looking)", dm.Resources)
		}
	}
	check(modes(t, db))

	// They survive a restart.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open(t, dir)
	check(modes(t, db))

	if err := db.DisableGlobalDebug(); err != nil {
		t.Fatal(err)
	}
	if dm := modes(t, db); dm.Global != nil {
		t.Errorf("global debug still on: %+v", dm.Global)
	}
}

func TestInvalidInput(t *testing.T) {
	db := open(t, t.TempDir())
	long := strings.Repeat("x", 2000)
	tests := []struct {
		name  string
		err   error
		field string
	}{
		{"empty tenant", db.EnableTenantDebug("", "r"), "tenant_id"},
		{"empty tenant off", db.DisableTenantDebug(""), "tenant_id"},
		{"long tenant", db.EnableTenantDebug(long, "r"), "tenant_id"},
		{"empty resource", db.EnableResourceDebug("", "r"), "resource_id"},
		{"long reason", db.EnableResourceDebug("r1", long), "reason"},
		{"long global reason", db.EnableGlobalDebug(long), "reason"},
		{"pending without id", db.PutPending(Pending{Actions: []event.Action{event.Delete}}), "resource.id"},
		{"forget without id", db.DeletePending(""), "resource_id"},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrInvalid) || !strings.Contains(tt.err.Error(), tt.field) {
			t.Errorf("%s: error %v, want one naming %s", tt.name, tt.err, tt.field)
		}
	}
	if dm := modes(t, db); dm.Global != nil || len(dm.Tenants)+len(dm.Resources) != 0 {
		t.Errorf("invalid input changed the debug modes: %+v", dm)
	}
	if p, err := db.Pending(); err != nil || len(p) != 0 {
		t.Errorf("invalid input changed pending work: %v %v", p, err)
	}
}

func TestPending(t *testing.T) {
	dir := t.TempDir()
	db := open(t, dir)
	r1 := event.Resource{Driver: "router", ID: "r1", TenantID: "t"}
	r2 := event.Resource{Driver: "router", ID: "r2", TenantID: "t"}
	if err := db.PutPending(Pending{Resource: r1, Actions: []event.Action{event.Delete}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutPending(Pending{Resource: r2, Actions: []event.Action{event.Update, event.Rebuild}, Image: "img"}); err != nil {
		t.Fatal(err)
	}
	// Replaces r1's record.
	if err := db.PutPending(Pending{Resource: r1, Actions: []event.Action{event.Update, event.Delete}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open(t, dir)
	got, err := db.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("pending %+v, want 2 records", got)
	}
	byID := map[string]Pending{}
	for _, p := range got {
		byID[p.Resource.ID] = p
	}
	if p := byID["r1"]; p.Resource != r1 || !slices.Equal(p.Actions, []event.Action{event.Update, event.Delete}) {
		t.Errorf("r1: %+v", p)
	}
	if p := byID["r2"]; p.Image != "img" || !slices.Equal(p.Actions, []event.Action{event.Update, event.Rebuild}) || p.Since.IsZero() {
		t.Errorf("r2: %+v", p)
	}
	for _, id := range []string{"r1", "r1", "missing"} {
		if err := db.DeletePending(id); err != nil {
			t.Fatalf("DeletePending(%s): %v", id, err)
		}
	}
	if got, _ := db.Pending(); len(got) != 1 || got[0].Resource != r2 {
		t.Errorf("after forgetting r1: %+v", got)
	}
}

// Concurrent writers and readers see consistent results (run with -race).
func TestConcurrentUse(t *testing.T) {
	db := open(t, t.TempDir())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				id := fmt.Sprintf("r-%d-%d", g, i)
				if err := db.EnableResourceDebug(id, "x"); err != nil {
					t.Error(err)
				}
				if i%2 == 1 {
					if err := db.DisableResourceDebug(id); err != nil {
						t.Error(err)
					}
				}
				if _, err := db.DebugModes(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := len(modes(t, db).Resources); n != 8*10 {
		t.Errorf("%d resources in debug, want 80", n)
	}
}

func TestClosedAndForeign(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.EnableGlobalDebug("x"); err == nil {
		t.Error("a closed database accepted a write")
	}
	if _, err := db.DebugModes(); err == nil {
		t.Error("a closed database answered a read")
	}

	// A database of another schema is refused, not reinterpreted.
	b, err := bbolt.Open(filepath.Join(dir, FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if db, err := Open(dir); err == nil || !strings.Contains(err.Error(), "schema") {
		if db != nil {
			db.Close()
		}
		t.Errorf("Open of a foreign schema: %v", err)
	}
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
}
