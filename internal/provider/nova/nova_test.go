package nova

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/provider/retry"
)

// The ports a test boots with (Neutron's, not in the samples).
const (
	mgmtPort  = "4d0c3c4e-6e1b-4f5e-9a7b-2f1e8c9d0a11"
	vrrpPort1 = "8a1f2b3c-4d5e-4f60-8172-93a4b5c6d7e8"
	vrrpPort2 = "1b2c3d4e-5f60-4718-899a-abbccddeeff0"
)

var userData = []byte(`{"astara":{"management":{"mac":"fa:16:3e:00:00:01","address":"fdca:3ba5:a17a:acda::5/64"}}}`)

func bootSpec() provider.BootSpec {
	return provider.BootSpec{
		Name: sampleName, ImageID: sampleImage, FlavorID: sampleFlavor,
		ManagementPort: provider.Port{ID: mgmtPort},
		Ports:          []provider.Port{{ID: vrrpPort1}, {ID: vrrpPort2}},
		UserData:       userData,
	}
}

func created(t *testing.T) time.Time {
	t.Helper()
	c, err := time.Parse(time.RFC3339, sampleCreated)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNew(t *testing.T) {
	f := newFake(t)
	c := f.client()
	p, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.client.Microversion != DefaultMicroversion || c.Microversion != "" {
		t.Errorf("microversion %q (the caller's client: %q)", p.client.Microversion, c.Microversion)
	}
	want := Options{Microversion: "2.1", RequestTimeout: time.Minute, BuildWait: 4500 * time.Millisecond,
		InterfaceWait: time.Minute, PollInterval: 500 * time.Millisecond,
		Retry: retry.Policy{Attempts: 5, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second}}
	got := p.opts
	got.Logger = nil
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	noSlash := f.client()
	noSlash.Endpoint = strings.TrimSuffix(noSlash.Endpoint, "/")
	network := f.client()
	network.Type = "network"
	for name, tc := range map[string]struct {
		c    *gophercloud.ServiceClient
		opts Options
	}{
		"no client":           {nil, Options{}},
		"no provider client":  {&gophercloud.ServiceClient{Endpoint: "http://x/"}, Options{}},
		"no slash":            {noSlash, Options{}},
		"not compute":         {network, Options{}},
		"microversion 2.0":    {c, Options{Microversion: "2.0"}},
		"microversion 3.1":    {c, Options{Microversion: "3.1"}},
		"microversion 2.x":    {c, Options{Microversion: "2.x"}},
		"microversion 2.01":   {c, Options{Microversion: "2.01"}},
		"negative timeout":    {c, Options{RequestTimeout: -1}},
		"negative build wait": {c, Options{BuildWait: -1}},
		"negative iface wait": {c, Options{InterfaceWait: -1}},
		"negative poll":       {c, Options{PollInterval: -1}},
		"negative retry":      {c, Options{Retry: retry.Policy{Attempts: -1}}},
	} {
		if _, err := New(tc.c, tc.opts); err == nil || !strings.HasPrefix(err.Error(), "nova provider: ") {
			t.Errorf("%s: New = %v", name, err)
		}
	}
}

func TestMicroversionHeaders(t *testing.T) {
	for _, mv := range []string{"", "2.67"} {
		f := newFake(t)
		p := f.provider(t, Options{Microversion: mv})
		if _, err := p.Boot(t.Context(), bootSpec()); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Get(t.Context(), serverShown); err != nil {
			t.Fatal(err)
		}
		want := cmpOr(mv, "2.1")
		for _, r := range f.allRequests() {
			if got := r.Header.Get("X-OpenStack-Nova-API-Version"); got != want {
				t.Errorf("%s %s: X-OpenStack-Nova-API-Version %q, want %q", r.Method, r.Path, got, want)
			}
			if got := r.Header.Get("OpenStack-API-Version"); got != "compute "+want {
				t.Errorf("%s %s: OpenStack-API-Version %q", r.Method, r.Path, got)
			}
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestBoot(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	inst, err := p.Boot(t.Context(), bootSpec())
	if err != nil {
		t.Fatal(err)
	}
	want := &provider.Instance{ID: serverCreated, Name: sampleName, ImageID: sampleImage, Status: provider.InstanceActive,
		Created: created(t), PortIDs: []string{mgmtPort, vrrpPort1, vrrpPort2}}
	if !reflect.DeepEqual(inst, want) {
		t.Errorf("Boot = %+v\nwant %+v", inst, want)
	}

	posts := f.requestsTo("POST", "servers")
	if len(posts) != 1 {
		t.Fatalf("%d creates", len(posts))
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(posts[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	wantBody := map[string]any{
		"name": sampleName, "imageRef": sampleImage, "flavorRef": sampleFlavor,
		"networks":     []any{map[string]any{"port": mgmtPort}, map[string]any{"port": vrrpPort1}, map[string]any{"port": vrrpPort2}},
		"config_drive": true,
		"user_data":    base64.StdEncoding.EncodeToString(userData),
	}
	if len(body) != 1 || !reflect.DeepEqual(body["server"], wantBody) {
		t.Errorf("create body %s\nwant {\"server\": %v}", posts[0].Body, wantBody)
	}
	// The names the create uses are those of Nova's own request sample.
	sample := field(t, readSample(t, "server-create-req.json"), "server")
	var sampleKeys map[string]any
	if err := json.Unmarshal(sample, &sampleKeys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "imageRef", "flavorRef", "user_data"} {
		if _, ok := sampleKeys[k]; !ok {
			t.Errorf("%q is not in server-create-req.json", k)
		}
	}
	if n := len(f.requestsTo("GET", "servers/"+serverCreated)); n != 1 {
		t.Errorf("%d reads of the new server, want 1", n)
	}
}

func TestBootUserData(t *testing.T) {
	for name, tc := range map[string]struct {
		data []byte
		want any
	}{
		// gophercloud would send this one as it is (it is valid base64).
		"looks like base64": {[]byte("abcd"), "YWJjZA=="},
		"none":              {nil, nil},
	} {
		f := newFake(t)
		spec := bootSpec()
		spec.UserData = tc.data
		if _, err := f.provider(t, Options{}).Boot(t.Context(), spec); err != nil {
			t.Fatal(err)
		}
		var body struct{ Server map[string]any }
		if err := json.Unmarshal(f.requestsTo("POST", "servers")[0].Body, &body); err != nil {
			t.Fatal(err)
		}
		if got := body.Server["user_data"]; got != tc.want {
			t.Errorf("%s: user_data %v, want %v", name, got, tc.want)
		}
	}
}

func TestBootWaitsForTheServer(t *testing.T) {
	t.Run("readable after two tries", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "servers/"+serverCreated, http.StatusNotFound, 2, nil)
		inst, err := f.provider(t, Options{}).Boot(t.Context(), bootSpec())
		if err != nil || inst.Status != provider.InstanceActive || !inst.Created.Equal(created(t)) {
			t.Fatalf("Boot = %+v, %v", inst, err)
		}
		if n := len(f.requestsTo("GET", "servers/"+serverCreated)); n != 3 {
			t.Errorf("%d reads, want 3", n)
		}
	})
	t.Run("never readable", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "servers/"+serverCreated, http.StatusNotFound, -1, nil)
		before := time.Now()
		inst, err := f.provider(t, Options{BuildWait: time.Millisecond}).Boot(t.Context(), bootSpec())
		if err != nil {
			t.Fatal(err)
		}
		if inst.ID != serverCreated || inst.Name != sampleName || inst.ImageID != sampleImage ||
			inst.Status != provider.InstanceBuild || inst.Created.Before(before) || len(inst.PortIDs) != 3 {
			t.Errorf("Boot = %+v, want the server as BUILD", inst)
		}
	})
}

func TestBootFailures(t *testing.T) {
	t.Run("refused by Nova", func(t *testing.T) {
		f := newFake(t)
		f.fail("POST", "servers", http.StatusBadRequest, 1, readSample(t, "bad-request.json"))
		_, err := f.provider(t, Options{}).Boot(t.Context(), bootSpec())
		var apiErr *APIError
		if !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) || !errors.As(err, &apiErr) ||
			!strings.Contains(err.Error(), sampleName) || !strings.Contains(err.Error(), "Can not find requested image") {
			t.Errorf("Boot = %v", err)
		}
		if n := len(f.allRequests()); n != 1 {
			t.Errorf("%d requests, want the create only", n)
		}
	})
	// A create Nova may have executed is not repeated: a second server
	// would boot.
	for name, status := range map[string]int{"server error": 500, "unavailable": 503, "connection reset": 0} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			f.fail("POST", "servers", status, 1, nil)
			if _, err := f.provider(t, Options{}).Boot(t.Context(), bootSpec()); err == nil || !strings.Contains(err.Error(), sampleName) {
				t.Errorf("Boot = %v", err)
			}
			if n := len(f.requestsTo("POST", "servers")); n != 1 {
				t.Errorf("%d creates, want 1", n)
			}
		})
	}
	// One that surely was not executed is.
	for name, tc := range map[string]struct {
		setup func(*fakeNova)
		posts int
	}{
		"rate-limited":       {func(f *fakeNova) { f.fail("POST", "servers", http.StatusTooManyRequests, 1, nil) }, 2},
		"connection refused": {func(f *fakeNova) { f.set(func(f *fakeNova) { f.refuse = 2 }) }, 1},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			tc.setup(f)
			if inst, err := f.provider(t, Options{}).Boot(t.Context(), bootSpec()); err != nil || inst.ID != serverCreated {
				t.Errorf("Boot = %v, %v", inst, err)
			}
			if n := len(f.requestsTo("POST", "servers")); n != tc.posts {
				t.Errorf("%d creates, want %d", n, tc.posts)
			}
		})
	}
	t.Run("bad spec", func(t *testing.T) {
		f := newFake(t)
		p := f.provider(t, Options{})
		noImage, badPort, noMgmt := bootSpec(), bootSpec(), bootSpec()
		noImage.ImageID = ""
		badPort.Ports[1].ID = "../ports"
		noMgmt.ManagementPort = provider.Port{}
		for _, spec := range []provider.BootSpec{noImage, badPort, noMgmt} {
			if _, err := p.Boot(t.Context(), spec); err == nil {
				t.Errorf("Boot(%+v) accepted", spec)
			}
		}
		if n := len(f.allRequests()); n != 0 {
			t.Errorf("%d requests", n)
		}
	})
}

func TestInstanceStatus(t *testing.T) {
	for nova, want := range map[string]provider.InstanceStatus{
		"BUILD": provider.InstanceBuild, "ACTIVE": provider.InstanceActive, "ERROR": provider.InstanceError,
		"SHUTOFF": provider.InstanceOther, "REBUILD": provider.InstanceOther, "UNKNOWN": provider.InstanceOther, "": provider.InstanceOther,
	} {
		if got := instanceStatus(nova); got != want {
			t.Errorf("instanceStatus(%q) = %s, want %s", nova, got, want)
		}
	}
}

func TestGet(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	inst, err := p.Get(t.Context(), serverShown)
	if err != nil {
		t.Fatal(err)
	}
	want := &provider.Instance{ID: serverShown, Name: sampleName, ImageID: sampleImage, Status: provider.InstanceActive,
		Created: created(t), PortIDs: []string{samplePort}}
	if !reflect.DeepEqual(inst, want) {
		t.Errorf("Get = %+v\nwant %+v", inst, want)
	}
	if n, m := len(f.requestsTo("GET", "servers/"+serverShown)), len(f.requestsTo("GET", "servers/"+serverShown+"/os-interface")); n != 1 || m != 1 {
		t.Errorf("%d reads and %d interface lists, want 1 and 1", n, m)
	}

	for nova, want := range map[string]provider.InstanceStatus{
		"BUILD": provider.InstanceBuild, "ERROR": provider.InstanceError, "SHUTOFF": provider.InstanceOther,
	} {
		f.patch(serverShown, "status", nova)
		if inst, err := p.Get(t.Context(), serverShown); err != nil || inst.Status != want {
			t.Errorf("status %s: Get = %+v, %v; want %s", nova, inst, err, want)
		}
	}
	for _, status := range []string{"DELETED", "SOFT_DELETED"} {
		f.patch(serverShown, "status", status)
		if _, err := p.Get(t.Context(), serverShown); !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), serverShown) {
			t.Errorf("status %s: Get = %v, want not found", status, err)
		}
	}
}

func TestGetFailures(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		f := newFake(t)
		_, err := f.provider(t, Options{}).Get(t.Context(), missing)
		if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), "getting server "+missing) ||
			!strings.Contains(err.Error(), "Instance "+missing+" could not be found.") {
			t.Errorf("Get = %v", err)
		}
		if n := len(f.allRequests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
	t.Run("gone before its interfaces are listed", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "servers/"+serverShown+"/os-interface", http.StatusNotFound, 1, nil)
		if _, err := f.provider(t, Options{}).Get(t.Context(), serverShown); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("Get = %v", err)
		}
	})
	t.Run("transient", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "servers/"+serverShown, http.StatusServiceUnavailable, 2, nil)
		f.fail("GET", "servers/"+serverShown+"/os-interface", 0, 1, nil)
		if inst, err := f.provider(t, Options{}).Get(t.Context(), serverShown); err != nil || len(inst.PortIDs) != 1 {
			t.Fatalf("Get = %+v, %v", inst, err)
		}
		if n, m := len(f.requestsTo("GET", "servers/"+serverShown)), len(f.requestsTo("GET", "servers/"+serverShown+"/os-interface")); n != 3 || m != 2 {
			t.Errorf("%d reads and %d interface lists, want 3 and 2", n, m)
		}
	})
	t.Run("attempts exhausted", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "servers/"+serverShown, http.StatusBadGateway, -1, nil)
		_, err := f.provider(t, Options{}).Get(t.Context(), serverShown)
		if !gophercloud.ResponseCodeIs(err, http.StatusBadGateway) || !strings.Contains(err.Error(), "4 attempts") {
			t.Errorf("Get = %v", err)
		}
	})
	for name, status := range map[string]int{"not implemented": 501, "forbidden": 403} {
		t.Run(name, func(t *testing.T) {
			f := newFake(t)
			f.fail("GET", "servers/"+serverShown, status, -1, nil)
			if _, err := f.provider(t, Options{}).Get(t.Context(), serverShown); !gophercloud.ResponseCodeIs(err, status) {
				t.Errorf("Get = %v", err)
			}
			if n := len(f.allRequests()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
	t.Run("bad id", func(t *testing.T) {
		f := newFake(t)
		for _, id := range []string{"", "..", "a/b", "a?b"} {
			if _, err := f.provider(t, Options{}).Get(t.Context(), id); err == nil {
				t.Errorf("Get(%q) accepted", id)
			}
		}
		if n := len(f.allRequests()); n != 0 {
			t.Errorf("%d requests", n)
		}
	})
}

func TestListByPrefix(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	insts, err := p.ListByPrefix(t.Context(), "new-server")
	if err != nil {
		t.Fatal(err)
	}
	want := []provider.Instance{
		{ID: serverCreated, Name: sampleName, ImageID: sampleImage, Status: provider.InstanceActive, Created: created(t)},
		{ID: serverShown, Name: sampleName, ImageID: sampleImage, Status: provider.InstanceActive, Created: created(t)},
	}
	if !reflect.DeepEqual(insts, want) {
		t.Errorf("ListByPrefix = %+v\nwant %+v", insts, want)
	}
	lists := f.requestsTo("GET", "servers/detail")
	if len(lists) != 2 {
		t.Fatalf("%d list requests, want 2", len(lists))
	}
	if q := lists[0].Query; len(q) != 1 || q.Get("name") != "^new-server" {
		t.Errorf("first page query %v", q)
	}
	// The second page is the samples' servers_links next, as it is.
	if q := lists[1].Query; len(q) != 2 || q.Get("limit") != "1" || q.Get("marker") != serverCreated {
		t.Errorf("second page query %v", q)
	}
	if len(f.allRequests()) != 2 {
		t.Errorf("requests beyond the list: %v", f.allRequests())
	}
}

func TestListByPrefixFilters(t *testing.T) {
	t.Run("regex quoted, prefix checked here", func(t *testing.T) {
		f := newFake(t)
		// The fake ignores the filter, like a case-insensitive regex match
		// that lets other names through.
		insts, err := f.provider(t, Options{}).ListByPrefix(t.Context(), "new-server.test+(1)")
		if err != nil || len(insts) != 0 {
			t.Errorf("ListByPrefix = %v, %v", insts, err)
		}
		if q := f.requestsTo("GET", "servers/detail")[0].Query.Get("name"); q != `^new-server\.test\+\(1\)` {
			t.Errorf("name filter %q", q)
		}
	})
	for _, status := range []string{"DELETED", "SOFT_DELETED"} {
		t.Run(status, func(t *testing.T) {
			f := newFake(t)
			f.patch(serverShown, "status", status)
			insts, err := f.provider(t, Options{}).ListByPrefix(t.Context(), sampleName)
			if err != nil || len(insts) != 1 || insts[0].ID != serverCreated {
				t.Errorf("ListByPrefix = %v, %v", insts, err)
			}
		})
	}
	t.Run("a page fails", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "servers/detail", http.StatusServiceUnavailable, 1, nil)
		insts, err := f.provider(t, Options{}).ListByPrefix(t.Context(), sampleName)
		if err != nil || len(insts) != 2 {
			t.Errorf("ListByPrefix = %v, %v", insts, err)
		}
		if n := len(f.requestsTo("GET", "servers/detail")); n != 3 {
			t.Errorf("%d list requests, want 3", n)
		}
	})
	t.Run("refused", func(t *testing.T) {
		f := newFake(t)
		f.fail("GET", "servers/detail", http.StatusForbidden, 1, nil)
		if _, err := f.provider(t, Options{}).ListByPrefix(t.Context(), sampleName); !gophercloud.ResponseCodeIs(err, 403) ||
			!strings.Contains(err.Error(), sampleName) {
			t.Errorf("ListByPrefix = %v", err)
		}
	})
}

func TestDelete(t *testing.T) {
	f := newFake(t)
	p := f.provider(t, Options{})
	if err := p.Delete(t.Context(), serverCreated); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requestsTo("DELETE", "servers/"+serverCreated)); n != 1 {
		t.Errorf("%d deletes", n)
	}
	if _, err := p.Get(t.Context(), serverCreated); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
	if err := p.Delete(t.Context(), serverCreated); err != nil {
		t.Errorf("deleting a deleted server: %v", err)
	}
	if err := p.Delete(t.Context(), missing); err != nil {
		t.Errorf("deleting a missing server: %v", err)
	}

	f.fail("DELETE", "servers/"+serverShown, http.StatusServiceUnavailable, 1, nil)
	if err := p.Delete(t.Context(), serverShown); err != nil {
		t.Errorf("Delete after a 503: %v", err)
	}
	if n := len(f.requestsTo("DELETE", "servers/"+serverShown)); n != 2 {
		t.Errorf("%d deletes, want 2", n)
	}

	f = newFake(t)
	f.fail("DELETE", "servers/"+serverShown, http.StatusConflict, 1, nil)
	err := f.provider(t, Options{}).Delete(t.Context(), serverShown)
	if !gophercloud.ResponseCodeIs(err, http.StatusConflict) || !strings.Contains(err.Error(), serverShown) {
		t.Errorf("Delete = %v", err)
	}
}

func TestDeleteAndWait(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fakeNova) { f.deleteDelay = 3 })
	if err := f.provider(t, Options{}).DeleteAndWait(t.Context(), serverShown, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requestsTo("GET", "servers/"+serverShown)); n != 4 {
		t.Errorf("%d reads, want 4 (3 while deleting, then the 404)", n)
	}

	f = newFake(t)
	f.set(func(f *fakeNova) { f.deleteDelay = -1 })
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	err := f.provider(t, Options{}).DeleteAndWait(ctx, serverShown, time.Nanosecond)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), serverShown) {
		t.Errorf("DeleteAndWait = %v", err)
	}
}

func TestAttachPort(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fakeNova) {
		f.ifaces[serverCreated] = nil
		f.ifaceDelay = 2
	})
	p := f.provider(t, Options{})
	if err := p.AttachPort(t.Context(), serverCreated, provider.Port{ID: samplePort}); err != nil {
		t.Fatal(err)
	}
	posts := f.requestsTo("POST", "servers/"+serverCreated+"/os-interface")
	if len(posts) != 1 {
		t.Fatalf("%d attaches", len(posts))
	}
	// The request is Nova's own sample.
	var got, want any
	if err := json.Unmarshal(posts[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(readSample(t, "attach-interfaces-create-req.json"), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attach body %s, want attach-interfaces-create-req.json", posts[0].Body)
	}
	if n := len(f.requestsTo("GET", "servers/"+serverCreated+"/os-interface")); n != 3 {
		t.Errorf("%d interface lists, want 3 (the port shows on the third)", n)
	}
	if inst, err := p.Get(t.Context(), serverCreated); err != nil || !slices.Equal(inst.PortIDs, []string{samplePort}) {
		t.Errorf("Get after AttachPort = %+v, %v", inst, err)
	}
}

func TestAttachPortFailures(t *testing.T) {
	t.Run("missing server", func(t *testing.T) {
		f := newFake(t)
		err := f.provider(t, Options{}).AttachPort(t.Context(), missing, provider.Port{ID: samplePort})
		if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), samplePort) {
			t.Errorf("AttachPort = %v", err)
		}
	})
	t.Run("not repeated", func(t *testing.T) {
		f := newFake(t)
		f.fail("POST", "servers/"+serverCreated+"/os-interface", http.StatusInternalServerError, 1, nil)
		if err := f.provider(t, Options{}).AttachPort(t.Context(), serverCreated, provider.Port{ID: samplePort}); err == nil {
			t.Error("AttachPort succeeded")
		}
		if n := len(f.requestsTo("POST", "servers/"+serverCreated+"/os-interface")); n != 1 {
			t.Errorf("%d attaches, want 1", n)
		}
	})
	t.Run("never listed", func(t *testing.T) {
		f := newFake(t)
		f.set(func(f *fakeNova) {
			f.ifaces[serverCreated] = nil
			f.ifaceDelay = -1
		})
		err := f.provider(t, Options{InterfaceWait: time.Millisecond}).AttachPort(t.Context(), serverCreated, provider.Port{ID: samplePort})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting") {
			t.Errorf("AttachPort = %v", err)
		}
	})
}

func TestDetachPort(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fakeNova) { f.ifaceDelay = 2 })
	p := f.provider(t, Options{})
	if err := p.DetachPort(t.Context(), serverCreated, samplePort); err != nil {
		t.Fatal(err)
	}
	if n := len(f.requestsTo("DELETE", "servers/"+serverCreated+"/os-interface/"+samplePort)); n != 1 {
		t.Errorf("%d detaches", n)
	}
	if n := len(f.requestsTo("GET", "servers/"+serverCreated+"/os-interface")); n != 3 {
		t.Errorf("%d interface lists, want 3 (the port is gone from the third)", n)
	}

	// Not attached (any more), or the server is gone: nothing to do.
	for _, server := range []string{serverCreated, missing} {
		before := len(f.allRequests())
		if err := p.DetachPort(t.Context(), server, samplePort); err != nil {
			t.Errorf("DetachPort(%s) = %v", server, err)
		}
		if n := len(f.allRequests()) - before; n != 1 {
			t.Errorf("DetachPort(%s): %d requests, want the detach only", server, n)
		}
	}

	f = newFake(t)
	f.set(func(f *fakeNova) { f.ifaceDelay = -1 })
	err := f.provider(t, Options{InterfaceWait: time.Millisecond}).DetachPort(t.Context(), serverCreated, samplePort)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), samplePort) {
		t.Errorf("DetachPort = %v", err)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body, want string
		notFound   bool
	}{
		{409, `{"conflictingRequest": {"code": 409, "message": "Cannot 'delete' instance while it is locked"}}`,
			"compute API answered 409 Conflict: Cannot 'delete' instance while it is locked", false},
		{404, string(readSample(t, "item-not-found.json")),
			"compute API answered 404 Not Found: Instance " + missing + " could not be found.", true},
		{404, "<html>Not Found</html>", "<html>Not Found</html>", true},
		{500, `{"a": {"message": "x"}, "b": {}}`, "but got 500 instead", false},
	} {
		in := gophercloud.ErrUnexpectedResponseCode{Actual: tc.status, Body: []byte(tc.body)}
		err := describe(in)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != tc.status || !gophercloud.ResponseCodeIs(err, tc.status) ||
			!strings.Contains(err.Error(), tc.want) || errors.Is(err, provider.ErrNotFound) != tc.notFound {
			t.Errorf("describe(%d %s) = %v", tc.status, tc.body, err)
		}
	}
	if err := errors.New("other"); describe(err) != err {
		t.Error("describe changed another error")
	}
}
