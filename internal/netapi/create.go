package netapi

import (
	"net/http"
)

// applyFunc creates one object in a transaction and returns its body.
type applyFunc func(t *txn) (object, error)

// preparer checks one object of a POST before anything is notified (what
// Neutron checks before its .start notification: the body, the network's
// ownership) and returns what creates it once .start is sent.
type preparer func(c *caller, b *body) (applyFunc, error)

// create serves the POST of a collection: one object, or several at once
// (bulk), in one transaction, with one .start and one .end notification
// carrying the request and the response, as Neutron's.
func (s *Server) create(resource string, attrs map[string]access, prepare preparer) handlerFunc {
	return func(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
		bodies, start, bulk, err := readCreate(r, c, resource, attrs)
		if err != nil {
			return 0, nil, err
		}
		applies := make([]applyFunc, 0, len(bodies))
		for _, b := range bodies {
			apply, err := prepare(c, b)
			if err != nil {
				return 0, nil, err
			}
			applies = append(applies, apply)
		}
		s.notifyStart(c, resource+".create.start", start)
		var out []object
		err = s.write(c, func(t *txn) error {
			out = out[:0]
			for _, apply := range applies {
				o, err := apply(t)
				if err != nil {
					return err
				}
				out = append(out, o)
			}
			t.emit(resource+".create.end", createdBody(resource, out, bulk))
			return nil
		})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, createdBody(resource, out, bulk), nil
	}
}

func createdBody(resource string, out []object, bulk bool) object {
	if bulk {
		return object{{resource + "s", out}}
	}
	return object{{resource, out[0]}}
}

// checkNetworkOwnership refuses a project's port or subnet on a network
// it neither owns nor shares (Neutron's ownership validation hook, which
// answers before the .start notification); a network it cannot see is not
// found.
func (s *Server) checkNetworkOwnership(c *caller, resource, networkID, tenant string) error {
	return s.read(func(t *txn) error {
		n, err := t.network(networkID)
		if err != nil {
			return err
		}
		if n == nil || !canSeeNetwork(c, n) {
			return errNetworkNotFound(networkID)
		}
		if c.Admin || n.Shared || n.TenantID == tenant {
			return nil
		}
		return newError(http.StatusForbidden, "HTTPForbidden", "Tenant %s not allowed to create %s on this network", tenant, resource)
	})
}
