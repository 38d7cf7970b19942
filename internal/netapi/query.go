package netapi

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Query parameters that are not filters.
var listParams = map[string]bool{
	"fields": true, "limit": true, "marker": true, "page_reverse": true,
	"sort_key": true, "sort_dir": true,
	"tags": true, "tags-any": true, "not-tags": true, "not-tags-any": true,
}

// collection describes how a resource is listed.
type collection struct {
	name string // "networks"
	// filters are the attributes one may filter on (Neutron's is_filter).
	filters map[string]bool
	// match filters on a special attribute (e.g. a port's fixed_ips); nil
	// or handled false: compare as a scalar.
	match func(o object, key string, values []string) (matched, handled bool)
}

func attrSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// listObjects answers a GET on a collection as Neutron does: filters (every
// value of a repeated parameter matches), tag filters, sorting, emulated
// pagination with links, and fields.
func listObjects(r *http.Request, coll collection, objs []object) (object, error) {
	q := r.URL.Query()
	var invalid []string
	for k := range q {
		if !listParams[k] && !coll.filters[k] {
			invalid = append(invalid, k)
		}
	}
	if len(invalid) > 0 {
		slices.Sort(invalid)
		return nil, errBadRequest("['%s'] is invalid attribute for filtering", strings.Join(invalid, "', '"))
	}
	if q.Has("tenant_id") && q.Has("project_id") {
		return nil, errBadRequest("Both tenant_id and project_id passed as filters.")
	}
	out := objs[:0:0]
	for _, o := range objs {
		ok, err := matches(o, q, coll)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, o)
		}
	}
	if err := sortObjects(q, out); err != nil {
		return nil, err
	}
	page, links, err := paginate(r, q, out, coll.name)
	if err != nil {
		return nil, err
	}
	if fields := nonEmpty(q["fields"]); len(fields) > 0 {
		for i := range page {
			page[i] = page[i].only(fields)
		}
	}
	body := object{{coll.name, orEmpty(page)}}
	if links != nil {
		body.add(coll.name+"_links", links)
	}
	return body, nil
}

func nonEmpty(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

func matches(o object, q url.Values, coll collection) (bool, error) {
	for k, values := range q {
		if listParams[k] {
			continue
		}
		if coll.match != nil {
			if ok, handled := coll.match(o, k, values); handled {
				if !ok {
					return false, nil
				}
				continue
			}
		}
		v, present := o.get(k)
		if !present {
			return false, nil
		}
		ok, err := scalarMatches(k, v, values)
		if err != nil || !ok {
			return false, err
		}
	}
	return matchTags(o, q), nil
}

// scalarMatches reports whether an attribute's value is one of values,
// each converted as Neutron converts filter values.
func scalarMatches(key string, v any, values []string) (bool, error) {
	for _, want := range values {
		switch t := v.(type) {
		case string:
			if t == want {
				return true, nil
			}
		case bool:
			b, err := parseBool(want)
			if err != nil {
				return false, errBadRequest("Invalid input for %s. Reason: '%s' cannot be converted to boolean.", key, want)
			}
			if b == t {
				return true, nil
			}
		case int:
			if n, err := strconv.ParseInt(want, 10, 64); err == nil && int(n) == t {
				return true, nil
			}
		case int64:
			if n, err := strconv.ParseInt(want, 10, 64); err == nil && n == t {
				return true, nil
			}
		case []string: // e.g. a network's subnets, a port's security_groups
			if slices.Contains(t, want) {
				return true, nil
			}
		}
	}
	return false, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "on", "y", "yes":
		return true, nil
	case "0", "f", "false", "off", "n", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// matchTags applies the standard-attr-tag filters: tags (all of),
// tags-any, not-tags (not all of), not-tags-any (none of); each a
// comma-separated list, repeated parameters combined.
func matchTags(o object, q url.Values) bool {
	v, _ := o.get("tags")
	have, _ := v.([]string)
	split := func(k string) []string {
		var out []string
		for _, s := range q[k] {
			for _, t := range strings.Split(s, ",") {
				if t != "" {
					out = append(out, t)
				}
			}
		}
		return out
	}
	hasAll := func(tags []string) bool {
		for _, t := range tags {
			if !slices.Contains(have, t) {
				return false
			}
		}
		return true
	}
	hasAny := func(tags []string) bool {
		return slices.ContainsFunc(tags, func(t string) bool { return slices.Contains(have, t) })
	}
	if t := split("tags"); len(t) > 0 && !hasAll(t) {
		return false
	}
	if t := split("tags-any"); len(t) > 0 && !hasAny(t) {
		return false
	}
	if t := split("not-tags"); len(t) > 0 && hasAll(t) {
		return false
	}
	if t := split("not-tags-any"); len(t) > 0 && hasAny(t) {
		return false
	}
	return true
}

// sortObjects sorts by the sort_key/sort_dir pairs, then by id (the order
// Neutron's database returns rows in).
func sortObjects(q url.Values, objs []object) error {
	keys, dirs := nonEmpty(q["sort_key"]), nonEmpty(q["sort_dir"])
	if len(keys) != len(dirs) {
		return errBadRequest("The number of sort_keys and sort_dirs must be same")
	}
	for _, d := range dirs {
		if d != "asc" && d != "desc" {
			return errBadRequest("['%s'] is invalid value for sort_dirs, valid value is 'asc' and 'desc'", d)
		}
	}
	if len(objs) > 0 {
		var bad []string
		for _, k := range keys {
			if v, ok := objs[0].get(k); !ok || !sortable(v) {
				bad = append(bad, k)
			}
		}
		if len(bad) > 0 {
			return errBadRequest("['%s'] is invalid attribute for sort_keys", strings.Join(bad, "', '"))
		}
	}
	slices.SortStableFunc(objs, func(a, b object) int {
		for i, k := range keys {
			va, _ := a.get(k)
			vb, _ := b.get(k)
			c := compareValues(va, vb)
			if dirs[i] == "desc" {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		ia, _ := a.get("id")
		ib, _ := b.get("id")
		return compareValues(ia, ib)
	})
	return nil
}

func sortable(v any) bool {
	switch v.(type) {
	case nil, string, bool, int, int64:
		return true
	}
	return false
}

// compareValues orders scalars; null sorts first, as in Neutron.
func compareValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch x := a.(type) {
	case string:
		y, _ := b.(string)
		return cmp.Compare(x, y)
	case int:
		y, _ := b.(int)
		return cmp.Compare(x, y)
	case int64:
		y, _ := b.(int64)
		return cmp.Compare(x, y)
	case bool:
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	return 0
}

// paginate applies limit, marker and page_reverse as Neutron's emulated
// pagination, and returns the links to the next and previous pages.
func paginate(r *http.Request, q url.Values, objs []object, name string) ([]object, []object, error) {
	lim := q.Get("limit")
	limit := 0
	if lim != "" {
		n, err := strconv.Atoi(lim)
		if err != nil || n < 0 {
			return nil, nil, errBadResourceRequest("limit", "Limit must be an integer 0 or greater and not '%s'", lim)
		}
		limit = n
	}
	if limit == 0 {
		return objs, nil, nil
	}
	marker := q.Get("marker")
	reverse := strings.EqualFold(q.Get("page_reverse"), "true")
	var page []object
	i := 0
	if marker != "" {
		i = slices.IndexFunc(objs, func(o object) bool { v, _ := o.get("id"); return v == marker })
		if i < 0 {
			return []object{}, linksFor(r, nil, limit, reverse), nil
		}
	} else if reverse {
		i = len(objs)
	}
	if reverse {
		page = objs[max(i-limit, 0):i]
	} else {
		if marker != "" {
			i++
		}
		page = objs[i:min(i+limit, len(objs))]
	}
	return page, linksFor(r, page, limit, reverse), nil
}

func linksFor(r *http.Request, page []object, limit int, reverse bool) []object {
	links := []object{}
	link := func(marker any, rev bool) string {
		q := r.URL.Query()
		q.Set("limit", strconv.Itoa(limit))
		if m, _ := marker.(string); m != "" {
			q.Set("marker", m)
		} else {
			q.Del("marker")
		}
		q.Del("page_reverse")
		if rev {
			q.Set("page_reverse", "True")
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		return scheme + "://" + r.Host + r.URL.Path + "?" + q.Encode()
	}
	var first, last any
	if len(page) > 0 {
		first, _ = page[0].get("id")
		last, _ = page[len(page)-1].get("id")
	}
	if !(len(page) < limit && !reverse) {
		links = append(links, object{{"rel", "next"}, {"href", link(last, false)}})
	}
	if !(len(page) < limit && reverse) {
		links = append(links, object{{"rel", "previous"}, {"href", link(first, true)}})
	}
	return links
}
