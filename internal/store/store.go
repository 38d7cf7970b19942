// Package store is the orchestrator's embedded database (bbolt) under its
// state directory. It keeps what must survive a restart and cannot be
// re-read from the cloud: the debug modes (global, per tenant, per
// resource, each with a reason) and pending work, chiefly DELETEs that
// were accepted but not yet carried out. A DB is safe for concurrent use;
// every update is one atomic, durable transaction.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"go.etcd.io/bbolt"

	"github.com/astara-go/astara/internal/event"
)

// FileName is the database's file name in the state directory.
const FileName = "orchestrator.db"

// schemaVersion is the layout of the buckets below.
const schemaVersion = "1"

// Limits of stored strings (the original's columns were varchar(255)).
const (
	maxIDLen     = 255
	maxReasonLen = 1024
)

// ErrInvalid marks input the store refuses (an empty or too long id, a
// too long reason); nothing was changed.
var ErrInvalid = errors.New("invalid input")

var (
	bucketMeta      = []byte("meta")
	bucketGlobal    = []byte("debug_global")
	bucketTenants   = []byte("debug_tenants")
	bucketResources = []byte("debug_resources")
	bucketPending   = []byte("pending")

	keySchema = []byte("schema")
	keyGlobal = []byte("global")
)

// Debug is one debug mode: while it is on, the orchestrator leaves the
// resources it covers alone.
type Debug struct {
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// DebugModes is every debug mode that is on.
type DebugModes struct {
	// Global, when not nil, covers every resource.
	Global    *Debug           `json:"global,omitempty"`
	Tenants   map[string]Debug `json:"tenants"`
	Resources map[string]Debug `json:"resources"`
}

// Pending is work accepted for a resource and not yet done, replayed when
// the orchestrator starts.
type Pending struct {
	Resource event.Resource `json:"resource"`
	// Actions are the actions to replay, in order.
	Actions []event.Action `json:"actions"`
	// Image is the image of a pending rebuild ("" for the default).
	Image string    `json:"image,omitempty"`
	Since time.Time `json:"since"`
}

// DB is the orchestrator's database.
type DB struct {
	bolt *bbolt.DB
}

// Open opens (creating it if needed) the database in dir, which it creates
// too. It fails after a few seconds if another process holds the file.
func Open(dir string) (*DB, error) {
	if dir == "" {
		return nil, errors.New("store: state directory: empty path")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketGlobal, bucketTenants, bucketResources, bucketPending} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this orchestrator reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &DB{bolt: b}, nil
}

// Path returns the database file's path.
func (d *DB) Path() string { return d.bolt.Path() }

// Close closes the database.
func (d *DB) Close() error {
	if err := d.bolt.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

func checkID(field, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: %s: empty", ErrInvalid, field)
	case len(id) > maxIDLen:
		return fmt.Errorf("%w: %s: longer than %d bytes", ErrInvalid, field, maxIDLen)
	}
	return nil
}

func checkReason(reason string) error {
	if len(reason) > maxReasonLen {
		return fmt.Errorf("%w: reason: longer than %d bytes", ErrInvalid, maxReasonLen)
	}
	return nil
}

// enable turns a debug mode on in bucket, or updates its reason.
func (d *DB) enable(bucket, key []byte, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	return d.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		dm := Debug{Reason: reason, Since: time.Now().UTC()}
		if old := b.Get(key); old != nil {
			var prev Debug
			if err := json.Unmarshal(old, &prev); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bucket, key, err)
			}
			dm.Since = prev.Since // on since then; only the reason changes
		}
		v, err := json.Marshal(dm)
		if err != nil {
			return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
		}
		return b.Put(key, v)
	})
}

func (d *DB) disable(bucket, key []byte) error {
	return d.bolt.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucket).Delete(key) })
}

// EnableGlobalDebug puts every resource in debug mode, or updates the reason.
func (d *DB) EnableGlobalDebug(reason string) error {
	if err := d.enable(bucketGlobal, keyGlobal, reason); err != nil {
		return fmt.Errorf("store: enable global debug: %w", err)
	}
	return nil
}

// DisableGlobalDebug ends the global debug mode.
func (d *DB) DisableGlobalDebug() error {
	if err := d.disable(bucketGlobal, keyGlobal); err != nil {
		return fmt.Errorf("store: disable global debug: %w", err)
	}
	return nil
}

// EnableTenantDebug puts a tenant in debug mode, or updates the reason.
func (d *DB) EnableTenantDebug(tenantID, reason string) error {
	err := checkID("tenant_id", tenantID)
	if err == nil {
		err = d.enable(bucketTenants, []byte(tenantID), reason)
	}
	if err != nil {
		return fmt.Errorf("store: enable debug of tenant %q: %w", tenantID, err)
	}
	return nil
}

// DisableTenantDebug ends a tenant's debug mode (a tenant not in debug mode
// is not an error).
func (d *DB) DisableTenantDebug(tenantID string) error {
	err := checkID("tenant_id", tenantID)
	if err == nil {
		err = d.disable(bucketTenants, []byte(tenantID))
	}
	if err != nil {
		return fmt.Errorf("store: disable debug of tenant %q: %w", tenantID, err)
	}
	return nil
}

// EnableResourceDebug puts a resource in debug mode, or updates the reason.
func (d *DB) EnableResourceDebug(resourceID, reason string) error {
	err := checkID("resource_id", resourceID)
	if err == nil {
		err = d.enable(bucketResources, []byte(resourceID), reason)
	}
	if err != nil {
		return fmt.Errorf("store: enable debug of resource %q: %w", resourceID, err)
	}
	return nil
}

// DisableResourceDebug ends a resource's debug mode (a resource not in
// debug mode is not an error).
func (d *DB) DisableResourceDebug(resourceID string) error {
	err := checkID("resource_id", resourceID)
	if err == nil {
		err = d.disable(bucketResources, []byte(resourceID))
	}
	if err != nil {
		return fmt.Errorf("store: disable debug of resource %q: %w", resourceID, err)
	}
	return nil
}

// DebugModes returns every debug mode that is on.
func (d *DB) DebugModes() (DebugModes, error) {
	dm := DebugModes{Tenants: map[string]Debug{}, Resources: map[string]Debug{}}
	err := d.bolt.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketGlobal).Get(keyGlobal); v != nil {
			var g Debug
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("decode global debug: %w", err)
			}
			dm.Global = &g
		}
		for _, m := range []struct {
			bucket []byte
			into   map[string]Debug
		}{{bucketTenants, dm.Tenants}, {bucketResources, dm.Resources}} {
			err := tx.Bucket(m.bucket).ForEach(func(k, v []byte) error {
				var one Debug
				if err := json.Unmarshal(v, &one); err != nil {
					return fmt.Errorf("decode %s/%s: %w", m.bucket, k, err)
				}
				m.into[string(k)] = one
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return DebugModes{}, fmt.Errorf("store: read debug modes: %w", err)
	}
	return dm, nil
}

// PutPending records pending work, replacing the resource's previous
// record, in one durable transaction: once it returns nil, the work
// survives a crash.
func (d *DB) PutPending(p ...Pending) error {
	for _, one := range p {
		if err := checkID("resource.id", one.Resource.ID); err != nil {
			return fmt.Errorf("store: pending work: %w", err)
		}
	}
	err := d.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketPending)
		for _, one := range p {
			if one.Since.IsZero() {
				one.Since = time.Now().UTC()
			}
			v, err := json.Marshal(one)
			if err != nil {
				return fmt.Errorf("encode %s: %w", one.Resource, err)
			}
			if err := b.Put([]byte(one.Resource.ID), v); err != nil {
				return fmt.Errorf("put %s: %w", one.Resource, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: record pending work: %w", err)
	}
	return nil
}

// DeletePending forgets a resource's pending work (none is not an error).
func (d *DB) DeletePending(resourceID string) error {
	err := checkID("resource_id", resourceID)
	if err == nil {
		err = d.bolt.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketPending).Delete([]byte(resourceID)) })
	}
	if err != nil {
		return fmt.Errorf("store: forget pending work of %q: %w", resourceID, err)
	}
	return nil
}

// Pending returns every pending record, oldest first.
func (d *DB) Pending() ([]Pending, error) {
	var all []Pending
	err := d.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPending).ForEach(func(k, v []byte) error {
			var p Pending
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("decode pending work of %s: %w", k, err)
			}
			all = append(all, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read pending work: %w", err)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Since.Before(all[j].Since) })
	return all, nil
}
