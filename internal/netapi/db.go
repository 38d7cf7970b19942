package netapi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// DBFileName is the database's file name in the state directory.
const DBFileName = "netapi.db"

const schemaVersion = "1"

var (
	bucketMeta        = []byte("meta")
	bucketNetworks    = []byte("networks")
	bucketSubnets     = []byte("subnets")
	bucketPorts       = []byte("ports")
	bucketRouters     = []byte("routers")
	bucketFloatingIPs = []byte("floatingips")
	// bucketIPs indexes allocated addresses: "<subnet id>/<ip>" → port id.
	bucketIPs = []byte("ip_allocations")
	// bucketMACs indexes MAC addresses: "<network id>/<mac>" → port id.
	bucketMACs = []byte("mac_addresses")
	// bucketOutbox holds the notifications of committed changes until
	// every notifier has taken them: big-endian sequence → oslo envelope.
	bucketOutbox = []byte("outbox")

	keySchema = []byte("schema")
)

var allBuckets = [][]byte{bucketMeta, bucketNetworks, bucketSubnets, bucketPorts, bucketRouters,
	bucketFloatingIPs, bucketIPs, bucketMACs, bucketOutbox}

// openDB opens (creating it and dir if needed) the database in dir.
func openDB(dir string) (*bbolt.DB, error) {
	if dir == "" {
		return nil, errors.New("state directory: empty path")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	path := filepath.Join(dir, DBFileName)
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("schema version %q, this program reads %q", v, schemaVersion)
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return b, nil
}

// txn is one transaction of the API: reads, and for writes the
// notifications to emit once it is committed.
type txn struct {
	tx  *bbolt.Tx
	now time.Time
	// ends are the notifications of the change (stored in the outbox by
	// the server before commit).
	ends []pendingNote
}

// pendingNote is a notification to build once the change is known.
type pendingNote struct {
	eventType string
	payload   any
}

func (t *txn) emit(eventType string, payload any) {
	t.ends = append(t.ends, pendingNote{eventType, payload})
}

// get reads the record id of bucket b into a new T; nil when absent.
func get[T any, P interface {
	*T
	record
}](t *txn, b []byte, id string) (P, error) {
	v := t.tx.Bucket(b).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r T
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", b, id, err)
	}
	return &r, nil
}

// all reads every record of bucket b, in creation order.
func all[T any, P interface {
	*T
	record
}](t *txn, b []byte) ([]P, error) {
	var out []P
	err := t.tx.Bucket(b).ForEach(func(k, v []byte) error {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode %s/%s: %w", b, k, err)
		}
		out = append(out, &r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b P) int { return int(a.std().AttrID - b.std().AttrID) })
	return out, nil
}

func put(t *txn, b []byte, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", b, r.id(), err)
	}
	if err := t.tx.Bucket(b).Put([]byte(r.id()), v); err != nil {
		return fmt.Errorf("put %s/%s: %w", b, r.id(), err)
	}
	return nil
}

func del(t *txn, b []byte, id string) error {
	if err := t.tx.Bucket(b).Delete([]byte(id)); err != nil {
		return fmt.Errorf("delete %s/%s: %w", b, id, err)
	}
	return nil
}

// newStandard returns the standard attributes of a new object.
func (t *txn) newStandard(description string, tags []string, revision int64) (standard, error) {
	seq, err := t.tx.Bucket(bucketMeta).NextSequence()
	if err != nil {
		return standard{}, fmt.Errorf("standard_attr_id: %w", err)
	}
	now := t.now
	return standard{AttrID: int64(seq), Description: description, Tags: orEmpty(tags),
		CreatedAt: now, UpdatedAt: now, Revision: revision}, nil
}

func (t *txn) network(id string) (*network, error) { return get[network](t, bucketNetworks, id) }
func (t *txn) subnet(id string) (*subnet, error)   { return get[subnet](t, bucketSubnets, id) }
func (t *txn) port(id string) (*port, error)       { return get[port](t, bucketPorts, id) }
func (t *txn) router(id string) (*router, error)   { return get[router](t, bucketRouters, id) }
func (t *txn) floatingIP(id string) (*floatingIP, error) {
	return get[floatingIP](t, bucketFloatingIPs, id)
}

func (t *txn) networks() ([]*network, error)       { return all[network](t, bucketNetworks) }
func (t *txn) subnets() ([]*subnet, error)         { return all[subnet](t, bucketSubnets) }
func (t *txn) ports() ([]*port, error)             { return all[port](t, bucketPorts) }
func (t *txn) routers() ([]*router, error)         { return all[router](t, bucketRouters) }
func (t *txn) floatingIPs() ([]*floatingIP, error) { return all[floatingIP](t, bucketFloatingIPs) }

// subnetsOf returns the subnets of n, in creation order.
func (t *txn) subnetsOf(n *network) ([]*subnet, error) {
	out := make([]*subnet, 0, len(n.Subnets))
	for _, id := range n.Subnets {
		s, err := t.subnet(id)
		if err != nil {
			return nil, err
		}
		if s == nil {
			return nil, fmt.Errorf("network %s lists subnet %s, which does not exist", n.ID, id)
		}
		out = append(out, s)
	}
	return out, nil
}

// portsWhere returns the ports for which keep is true.
func (t *txn) portsWhere(keep func(*port) bool) ([]*port, error) {
	ps, err := t.ports()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ps, func(p *port) bool { return !keep(p) }), nil
}

func ipKey(subnetID string, ip netip.Addr) []byte { return []byte(subnetID + "/" + ip.String()) }
func macKey(networkID, mac string) []byte         { return []byte(networkID + "/" + mac) }

// ipHolder returns the port holding ip on the subnet, "" if none.
func (t *txn) ipHolder(subnetID string, ip netip.Addr) string {
	return string(t.tx.Bucket(bucketIPs).Get(ipKey(subnetID, ip)))
}

// macHolder returns the port with mac on the network, "" if none.
func (t *txn) macHolder(networkID, mac string) string {
	return string(t.tx.Bucket(bucketMACs).Get(macKey(networkID, mac)))
}

// usedIPs returns the addresses allocated on a subnet, sorted.
func (t *txn) usedIPs(subnetID string) ([]netip.Addr, error) {
	prefix := []byte(subnetID + "/")
	var out []netip.Addr
	c := t.tx.Bucket(bucketIPs).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ip, err := netip.ParseAddr(string(k[len(prefix):]))
		if err != nil {
			return nil, fmt.Errorf("decode %s/%s: %w", bucketIPs, k, err)
		}
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// savePort stores p (nil: deletes old) and keeps the address and MAC
// indexes in step; old is the stored version (nil for a new port).
func (t *txn) savePort(old, p *port) error {
	ips, macs := t.tx.Bucket(bucketIPs), t.tx.Bucket(bucketMACs)
	if old != nil {
		for _, f := range old.FixedIPs {
			if err := ips.Delete(ipKey(f.SubnetID, f.IP)); err != nil {
				return fmt.Errorf("release %s: %w", f.IP, err)
			}
		}
		if err := macs.Delete(macKey(old.NetworkID, old.MAC)); err != nil {
			return fmt.Errorf("release %s: %w", old.MAC, err)
		}
	}
	if p == nil {
		return del(t, bucketPorts, old.ID)
	}
	for _, f := range p.FixedIPs {
		k := ipKey(f.SubnetID, f.IP)
		if h := ips.Get(k); h != nil && string(h) != p.ID {
			return errIPAlreadyAllocated(f.IP.String(), f.SubnetID)
		}
		if err := ips.Put(k, []byte(p.ID)); err != nil {
			return fmt.Errorf("allocate %s: %w", f.IP, err)
		}
	}
	k := macKey(p.NetworkID, p.MAC)
	if h := macs.Get(k); h != nil && string(h) != p.ID {
		return errConflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, p.MAC)
	}
	if err := macs.Put(k, []byte(p.ID)); err != nil {
		return fmt.Errorf("record %s: %w", p.MAC, err)
	}
	return put(t, bucketPorts, p)
}

// outboxKey encodes an outbox sequence number.
func outboxKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }
