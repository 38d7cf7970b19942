// Package neutrontest finds the real Neutron server tests run against:
// scripts/neutron.sh starts one (Debian's neutron-server without Keystone,
// with MariaDB and RabbitMQ) and scripts/test.sh exports where it is.
//
//	ASTARA_NEUTRON_URL            the API, e.g. http://127.0.0.1:9696
//	ASTARA_NEUTRON_AUTH           headers (tenants by X-Project-Id) or noauth (every request admin)
//	ASTARA_NEUTRON_TRANSPORT_URL  the broker it publishes its notifications to
//	ASTARA_NEUTRON_REQUIRED       1: a test needing Neutron fails instead of skipping when it is missing
//
// The tests of every package share that one server, and an orchestrator
// under test manages every router it sees: Find serializes them, across
// the test processes go test runs in parallel, with a lock file.
package neutrontest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Server is a real Neutron server.
type Server struct {
	// URL is the API's root URL.
	URL string
	// Auth is "headers" or "noauth" (see package doc).
	Auth string
	// TransportURL is the broker of its notifications ("" if unknown).
	TransportURL string
}

// Find returns the Neutron server of the environment. Without one, the
// test is skipped, or failed when ASTARA_NEUTRON_REQUIRED=1 (as
// scripts/test.sh sets it, so that CI never skips these tests silently).
func Find(t testing.TB) Server {
	t.Helper()
	s := Server{URL: os.Getenv("ASTARA_NEUTRON_URL"), Auth: os.Getenv("ASTARA_NEUTRON_AUTH"),
		TransportURL: os.Getenv("ASTARA_NEUTRON_TRANSPORT_URL")}
	if s.Auth == "" {
		s.Auth = "noauth"
	}
	if s.Auth != "noauth" && s.Auth != "headers" {
		t.Fatalf("ASTARA_NEUTRON_AUTH=%q: want headers or noauth", s.Auth)
	}
	if s.URL == "" {
		if os.Getenv("ASTARA_NEUTRON_REQUIRED") == "1" {
			t.Fatal("ASTARA_NEUTRON_REQUIRED=1 but ASTARA_NEUTRON_URL is not set: start Neutron with scripts/neutron.sh")
		}
		t.Skip("ASTARA_NEUTRON_URL is not set: no Neutron server (scripts/test.sh starts one with scripts/neutron.sh)")
	}
	lock(t)
	return s
}

// lock holds the lock of the Neutron server's tests until the test ends.
func lock(t testing.TB) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "astara-neutron-tests.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatalf("neutrontest: %v", err)
	}
	// Blocks while another test uses the server; go test's -timeout
	// bounds the wait.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("neutrontest: locking %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// FindHeaders is Find for tests that need tenants told apart by identity
// headers (ASTARA_NEUTRON_AUTH=headers).
func FindHeaders(t testing.TB) Server {
	t.Helper()
	s := Find(t)
	if s.Auth != "headers" {
		if os.Getenv("ASTARA_NEUTRON_REQUIRED") == "1" {
			t.Fatalf("ASTARA_NEUTRON_AUTH=%s: this test needs headers mode (NEUTRON_AUTH=headers scripts/neutron.sh)", s.Auth)
		}
		t.Skipf("ASTARA_NEUTRON_AUTH=%s: this test needs Neutron in headers mode", s.Auth)
	}
	return s
}
