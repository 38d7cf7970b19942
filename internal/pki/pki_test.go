package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"
)

func TestEnsure(t *testing.T) {
	dir := t.TempDir() + "/pki"
	f, made, err := Ensure(dir, DefaultServerName, 365*24*time.Hour)
	if err != nil || !made {
		t.Fatalf("first Ensure: made %v, %v", made, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v", fi.Mode(), err)
	}
	ca, _ := os.ReadFile(f.CA)
	if _, made, err := Ensure(dir, DefaultServerName, time.Hour); err != nil || made {
		t.Errorf("second Ensure: made %v, %v", made, err)
	}
	if again, _ := os.ReadFile(f.CA); string(again) != string(ca) {
		t.Error("a whole PKI was replaced")
	}
	handshake(t, f)

	// Another name, a missing file, or a PKI about to expire: made again.
	for _, tc := range []struct {
		name  string
		spoil func()
		sname string
	}{
		{"other name", func() {}, "other.astara"},
		{"missing key", func() { os.Remove(f.ClientKey) }, DefaultServerName},
		{"garbage", func() { os.WriteFile(f.ServerCert, []byte("nonsense"), 0o600) }, DefaultServerName},
	} {
		tc.spoil()
		g, made, err := Ensure(dir, tc.sname, 365*24*time.Hour)
		if err != nil || !made {
			t.Errorf("%s: made %v, %v", tc.name, made, err)
		}
		handshake(t, g)
	}
	if _, err := Generate(dir, DefaultServerName, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, made, err := Ensure(dir, DefaultServerName, 365*24*time.Hour); err != nil || !made {
		t.Errorf("expiring within a day: made %v, %v", made, err)
	}
}

// handshake checks mutual TLS between the server and client certificates.
func handshake(t *testing.T, f Files) {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(f.CA)
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("CA: %v", err)
	}
	srv, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert})
		done <- s.Handshake()
	}()
	c := tls.Client(b, &tls.Config{Certificates: []tls.Certificate{cli}, RootCAs: pool, ServerName: f.ServerName})
	if err := c.Handshake(); err != nil {
		t.Errorf("client handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("server handshake: %v", err)
	}
}
