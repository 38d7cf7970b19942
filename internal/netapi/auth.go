package netapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// NoauthProject is the project of a request that names none: Neutron's
// noauth middleware makes such a request admin in this project.
const NoauthProject = "fake_project_id"

// caller is who makes a request, as Neutron's request context holds it.
type caller struct {
	ProjectID string
	UserID    string // "" when the request names no user
	Roles     []string
	Admin     bool
	RequestID string
	Time      time.Time
}

// callerOf derives the caller from the request headers, as Neutron's noauth
// and keystonecontext middlewares do without Keystone: X-Project-Id (or the
// older X-Tenant-Id) names the project, X-User-Id the user, X-Roles the
// roles. A request without a project is admin (stock noauth); one with a
// project is admin when its roles include admin.
func callerOf(r *http.Request, now time.Time) caller {
	c := caller{
		ProjectID: firstHeader(r, "X-Project-Id", "X-Tenant-Id", "X-Tenant"),
		UserID:    firstHeader(r, "X-User-Id", "X-User"),
		RequestID: newRequestID(),
		Time:      now,
	}
	for _, role := range strings.Split(r.Header.Get("X-Roles"), ",") {
		if role = strings.TrimSpace(role); role != "" {
			c.Roles = append(c.Roles, role)
		}
	}
	switch {
	case c.ProjectID == "":
		c.ProjectID = NoauthProject
		c.Admin = true
		if len(c.Roles) == 0 {
			c.Roles = []string{"admin"}
		}
	case slices.ContainsFunc(c.Roles, func(s string) bool { return strings.EqualFold(s, "admin") }):
		c.Admin = true
	}
	return c
}

func firstHeader(r *http.Request, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(r.Header.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

// owns reports whether the caller may act on an object of project tenant
// as its owner.
func (c *caller) owns(tenant string) bool { return c.Admin || c.ProjectID == tenant }

// newRequestID returns an id in oslo's format, req-<uuid>.
func newRequestID() string { return "req-" + newUUID() }

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newHexID returns 32 random hex digits (oslo's _unique_id).
func newHexID() string { return strings.ReplaceAll(newUUID(), "-", "") }
