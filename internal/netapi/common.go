package netapi

import (
	"net/http"
	"strconv"
	"strings"
)

// Visibility, as Neutron's default policies (Zed, deprecated rules still
// in force): admin sees everything; a project sees its own objects, shared
// and external networks, the subnets of shared networks, and the ports on
// its networks.

func canSeeNetwork(c *caller, n *network) bool {
	return c.owns(n.TenantID) || n.Shared || n.External
}

func canSeeSubnet(c *caller, s *subnet, n *network) bool {
	return c.owns(s.TenantID) || (n != nil && n.Shared)
}

func canSeePort(c *caller, p *port, n *network) bool {
	return c.owns(p.TenantID) || (n != nil && c.owns(n.TenantID))
}

// checkIfMatch enforces an If-Match: revision_number=N header
// (revision-if-match extension).
func checkIfMatch(r *http.Request, s *standard) error {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil
	}
	if strings.Contains(h, ",") {
		return errBadRequest("Multiple revision_number etags are not supported.")
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(h), "revision_number=")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		return errBadRequest("Revision number etag must be in the format of revision_number=<int>. Provided: %s", h)
	}
	if n != s.Revision {
		return newError(http.StatusPreconditionFailed, "RevisionNumberConstraintFailed",
			"Constrained to %d, but current revision is %d", n, s.Revision)
	}
	return nil
}

// pathID returns the {id} of the request path.
func pathID(r *http.Request) string { return r.PathValue("id") }

// errPolicyAttr is the 403 of setting an attribute the caller may not set.
func errPolicyAttr(action, attr string) *apiError {
	return newError(http.StatusForbidden, "PolicyNotAuthorized", "(rule:%s and rule:%s:%s) is disallowed by policy", action, action, attr)
}

func itoa(n int) string { return strconv.Itoa(n) }

// list answers a list request: the objects read by read, in one read
// transaction, filtered, sorted and paged as the request asks.
func (s *Server) list(r *http.Request, coll collection, read func(t *txn) ([]object, error)) (int, any, error) {
	var objs []object
	if err := s.read(func(t *txn) (err error) { objs, err = read(t); return err }); err != nil {
		return 0, nil, err
	}
	body, err := listObjects(r, coll, objs)
	return http.StatusOK, body, err
}

// show answers a show request: the object read by read, in one read
// transaction, with the fields the request asks for.
func (s *Server) show(r *http.Request, resource string, read func(t *txn) (object, error)) (int, any, error) {
	var o object
	if err := s.read(func(t *txn) (err error) { o, err = read(t); return err }); err != nil {
		return 0, nil, err
	}
	return showBody(r, resource, o)
}

// networkCache reads each network at most once in a transaction: lists
// of subnets and ports look up the network of every item.
type networkCache struct {
	t    *txn
	nets map[string]*network
}

func (c *networkCache) get(id string) (*network, error) {
	if n, ok := c.nets[id]; ok {
		return n, nil
	}
	n, err := c.t.network(id)
	if err != nil {
		return nil, err
	}
	if c.nets == nil {
		c.nets = map[string]*network{}
	}
	c.nets[id] = n
	return n, nil
}
