package netapi

import (
	"encoding/json"
	"net/http"
	"testing"
)

// The server listens, serves (old clients' .json suffixes included) and
// shuts down; Serve then returns nil.
func TestListenServeShutdown(t *testing.T) {
	s, err := Open(Config{StateDir: t.TempDir(), Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err == nil {
		t.Errorf("Serve before Listen succeeded")
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Listen("127.0.0.1:0"); err == nil {
		t.Errorf("a second Listen succeeded")
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	for _, path := range []string{"/", "/v2.0/", "/v2.0/networks.json", "/v2.0/extensions"} {
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("X-Openstack-Request-Id") == "" {
			t.Errorf("GET %s: %d %v %v %v", path, resp.StatusCode, resp.Header, body, err)
		}
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("a second Shutdown: %v", err)
	}
}
