package netapi

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
)

// taggable returns the object a tags request is about, for a caller who
// may change it (404 if it cannot see it, 403 if it cannot change it).
func (t *txn) taggable(c *caller, coll, id string) (record, []byte, error) {
	var rec record
	var owner string
	var err error
	var bucket []byte
	switch coll {
	case "networks":
		bucket = bucketNetworks
		var n *network
		if n, err = t.network(id); err == nil && (n == nil || !canSeeNetwork(c, n)) {
			err = errNetworkNotFound(id)
		}
		if err == nil {
			rec, owner = n, n.TenantID
		}
	case "subnets":
		bucket = bucketSubnets
		var s *subnet
		var n *network
		if s, n, err = t.visibleSubnet(c, id); err == nil {
			rec, owner = s, n.TenantID
		}
	case "ports":
		bucket = bucketPorts
		var p *port
		if p, _, err = t.visiblePort(c, id); err == nil {
			rec, owner = p, p.TenantID
		}
	case "routers":
		bucket = bucketRouters
		var r *router
		if r, err = t.visibleRouter(c, id); err == nil {
			rec, owner = r, r.TenantID
		}
	case "floatingips":
		bucket = bucketFloatingIPs
		var f *floatingIP
		if f, err = t.visibleFloatingIP(c, id); err == nil {
			rec, owner = f, f.TenantID
		}
	default:
		return nil, nil, errNotFound("HTTPNotFound", "The resource could not be found.")
	}
	if err != nil {
		return nil, nil, err
	}
	if !c.owns(owner) {
		return nil, nil, errPolicy("update_" + coll[:len(coll)-1])
	}
	return rec, bucket, nil
}

func validTag(tag string) error {
	if len(tag) > maxTagLen {
		return errInvalidInput("'%s' exceeds maximum length of %d", tag, maxTagLen)
	}
	return nil
}

func tagPayload(coll, id string, tags []string) object {
	p := object{{"parent_resource", coll}, {"parent_resource_id", id}}
	if tags != nil {
		p.add("tags", tags)
	}
	return p
}

func (s *Server) listTags(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	var tags []string
	err := s.read(func(t *txn) error {
		rec, _, err := t.taggableVisible(c, r.PathValue("collection"), pathID(r))
		if err != nil {
			return err
		}
		tags = rec.std().Tags
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, object{{"tags", orEmpty(tags)}}, nil
}

// taggableVisible is taggable for reads: visibility alone.
func (t *txn) taggableVisible(c *caller, coll, id string) (record, []byte, error) {
	rec, b, err := t.taggable(c, coll, id)
	if e, ok := asAPIError(err); ok && e.Status == http.StatusForbidden {
		rec, b, err = t.taggable(&caller{Admin: true}, coll, id)
	}
	return rec, b, err
}

func (s *Server) showTag(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	tag := r.PathValue("tag")
	if err := validTag(tag); err != nil {
		return 0, nil, err
	}
	err := s.read(func(t *txn) error {
		rec, _, err := t.taggableVisible(c, r.PathValue("collection"), pathID(r))
		if err != nil {
			return err
		}
		if !slices.Contains(rec.std().Tags, tag) {
			return errNotFound("TagNotFound", "Tag %s could not be found.", tag)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// changeTags runs one tag operation: its tag.<action>.start, the change
// (which bumps the object's revision) and tag.<action>.end.
func (s *Server) changeTags(r *http.Request, c *caller, action string, tags []string, change func(have []string) ([]string, error)) error {
	coll, id := r.PathValue("collection"), pathID(r)
	s.notifyStart(c, "tag."+action+".start", tagPayload(coll, id, tags))
	return s.write(c, func(t *txn) error {
		rec, bucket, err := t.taggable(c, coll, id)
		if err != nil {
			return err
		}
		std := rec.std()
		before := slices.Clone(std.Tags)
		if std.Tags, err = change(slices.Clone(std.Tags)); err != nil {
			return err
		}
		std.Tags = orEmpty(std.Tags)
		if !slices.Equal(before, std.Tags) {
			std.touch(t.now)
		}
		if err := put(t, bucket, rec); err != nil {
			return err
		}
		t.emit("tag."+action+".end", tagPayload(coll, id, tags))
		return nil
	})
}

func (s *Server) addTag(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	tag := r.PathValue("tag")
	if err := validTag(tag); err != nil {
		return 0, nil, err
	}
	err := s.changeTags(r, c, "create", []string{tag}, func(have []string) ([]string, error) {
		if !slices.Contains(have, tag) {
			if len(have) >= maxTags {
				return nil, errBadRequest("The number of tags exceeds the maximum %d.", maxTags)
			}
			have = append(have, tag)
		}
		return have, nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, nil, nil
}

func (s *Server) replaceTags(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return 0, nil, errBadRequest("Malformed request body: %v", err)
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m["tags"] == nil {
		return 0, nil, errInvalidInput("Invalid tags body")
	}
	var tags []string
	if json.Unmarshal(m["tags"], &tags) != nil || tags == nil {
		return 0, nil, errInvalidInput("'%s' is not a list", shown(m["tags"]))
	}
	for i, tag := range tags {
		if err := validTag(tag); err != nil {
			return 0, nil, err
		}
		if slices.Contains(tags[:i], tag) {
			return 0, nil, errInvalidInput("Duplicate items in the list: '%s'", tag)
		}
	}
	if len(tags) > maxTags {
		return 0, nil, errBadRequest("The number of tags exceeds the maximum %d.", maxTags)
	}
	err = s.changeTags(r, c, "update", tags, func([]string) ([]string, error) { return slices.Clone(tags), nil })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, object{{"tags", tags}}, nil
}

func (s *Server) deleteTag(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	tag := r.PathValue("tag")
	if err := validTag(tag); err != nil {
		return 0, nil, err
	}
	err := s.changeTags(r, c, "delete", []string{tag}, func(have []string) ([]string, error) {
		i := slices.Index(have, tag)
		if i < 0 {
			return nil, errNotFound("TagNotFound", "Tag %s could not be found.", tag)
		}
		return slices.Delete(have, i, i+1), nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) deleteTags(_ http.ResponseWriter, r *http.Request, c *caller) (int, any, error) {
	err := s.changeTags(r, c, "delete_all", nil, func([]string) ([]string, error) { return []string{}, nil })
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
