package openstack

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
)

// The credentials of Keystone's api-ref samples (testdata).
const (
	sampleUserID        = "ee4dfb6e5540447cb3741905149d9b6e"
	samplePassword      = "devstacker"
	sampleProjectID     = "a6944d763bf64ee6a275f1263fae0352"
	sampleAppCredID     = "423f19a4ac1e4f48bbb4180756e6eb6c"
	sampleAppCredSecret = "rEaqvJka48mpv"
	sampleAppCredUserID = "423f19a4ac1e4f48bbb4180756e6eb6c"
)

// Fixtures of testdata.
const (
	reqProjectID      = "keystone-auth-project-id-password-request.json"
	reqProjectName    = "keystone-auth-project-name-password-request.json"
	reqUserNameDomain = "keystone-auth-password-unscoped-request-with-domain.json"
	reqAppCredID      = "keystone-auth-application-credential-id-request.json"
	reqAppCredName    = "keystone-auth-application-credential-name-request.json"
)

func TestTokenRequests(t *testing.T) {
	f := newFakeCloud(t, false)
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		auth Auth
		want func(t *testing.T) any
	}{{
		name: "password, user and project by id",
		auth: Auth{AuthURL: f.URL() + "/v3", UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID},
		want: func(t *testing.T) any { return fixtureJSON(t, reqProjectID) },
	}, {
		name: "password, user by id, project by name and domain id",
		auth: Auth{AuthURL: f.URL() + "/v3/", UserID: sampleUserID, Password: samplePassword, ProjectName: "admin", ProjectDomainID: "default"},
		want: func(t *testing.T) any { return fixtureJSON(t, reqProjectName) },
	}, {
		name: "password, user by name and domain name, project by name (auth_url without /v3)",
		auth: Auth{AuthURL: f.URL(), AuthType: AuthPassword, Username: "admin", UserDomainName: "Default", Password: samplePassword,
			ProjectName: "admin", ProjectDomainID: "default"},
		want: func(t *testing.T) any { return authRequest(t, reqUserNameDomain, reqProjectName) },
	}, {
		name: "v3password, user by name and domain name, project by id",
		auth: Auth{AuthURL: f.URL() + "/v3", AuthType: AuthV3Password, Username: "admin", UserDomainName: "Default", Password: samplePassword,
			ProjectID: sampleProjectID},
		want: func(t *testing.T) any { return authRequest(t, reqUserNameDomain, reqProjectID) },
	}, {
		name: "password, user domain by id, project domain by name",
		auth: Auth{AuthURL: f.URL() + "/v3", Username: "admin", UserDomainID: "default", Password: samplePassword,
			ProjectName: "admin", ProjectDomainName: "Default"},
		want: func(t *testing.T) any {
			return map[string]any{"auth": map[string]any{
				"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": map[string]any{
					"name": "admin", "domain": map[string]any{"id": "default"}, "password": samplePassword}}},
				"scope": map[string]any{"project": map[string]any{"name": "admin", "domain": map[string]any{"name": "Default"}}},
			}}
		},
	}, {
		name: "password, ids win over names",
		auth: Auth{AuthURL: f.URL() + "/v3", UserID: sampleUserID, Username: "someone", UserDomainName: "Default", Password: samplePassword,
			ProjectID: sampleProjectID, ProjectName: "other", ProjectDomainName: "Default"},
		want: func(t *testing.T) any { return fixtureJSON(t, reqProjectID) },
	}, {
		name: "explicit password auth ignores application credential fields",
		auth: Auth{AuthURL: f.URL() + "/v3", AuthType: AuthPassword, UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID,
			ApplicationCredentialID: sampleAppCredID, ApplicationCredentialSecret: sampleAppCredSecret},
		want: func(t *testing.T) any { return fixtureJSON(t, reqProjectID) },
	}, {
		name: "application credential by id (inferred), project fields not sent",
		auth: Auth{AuthURL: f.URL() + "/v3", ApplicationCredentialID: sampleAppCredID, ApplicationCredentialSecret: sampleAppCredSecret,
			UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID},
		want: func(t *testing.T) any { return fixtureJSON(t, reqAppCredID) },
	}, {
		name: "application credential by name and user id",
		auth: Auth{AuthURL: f.URL() + "/v3", AuthType: AuthV3ApplicationCredential, ApplicationCredentialName: "monitoring",
			UserID: sampleAppCredUserID, ApplicationCredentialSecret: sampleAppCredSecret},
		want: func(t *testing.T) any { return fixtureJSON(t, reqAppCredName) },
	}, {
		name: "application credential by name and user name",
		auth: Auth{AuthURL: f.URL() + "/v3", ApplicationCredentialName: "monitoring", Username: "demo", UserDomainName: "Default",
			ApplicationCredentialSecret: sampleAppCredSecret},
		want: func(t *testing.T) any {
			return map[string]any{"auth": map[string]any{"identity": map[string]any{
				"methods": []string{"application_credential"},
				"application_credential": map[string]any{"name": "monitoring", "secret": sampleAppCredSecret,
					"user": map[string]any{"name": "demo", "domain": map[string]any{"name": "Default"}}},
			}}}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.bodies())
			c, err := Connect(ctx, tc.auth, nil)
			if err != nil {
				t.Fatal(err)
			}
			bodies := f.bodies()
			if len(bodies) != before+1 {
				t.Fatalf("%d token requests, want 1", len(bodies)-before)
			}
			sameJSON(t, bodies[before], tc.want(t))
			if tok := c.Provider.Token(); tok != fmt.Sprintf("token-%d", before+1) {
				t.Errorf("token %q, want the X-Subject-Token issued", tok)
			}
		})
	}
}

func TestEndpointSelection(t *testing.T) {
	f := newFakeCloud(t, false)
	ctx := t.Context()
	base := Auth{AuthURL: f.URL() + "/v3", UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID}
	for _, tc := range []struct {
		region, iface string
		want          string // region/interface of the endpoints, "" for none
	}{
		{"", "", "RegionOne/public"},
		{"RegionOne", "public", "RegionOne/public"},
		{"RegionTwo", "", "RegionTwo/public"},
		{"RegionTwo", "publicURL", "RegionTwo/public"},
		{"", "internal", "RegionOne/internal"},
		{"RegionOne", "internalURL", "RegionOne/internal"},
		{"RegionTwo", "internal", "RegionTwo/internal"},
		{"RegionOne", "adminURL", "RegionOne/admin"},
		{"RegionTwo", "admin", ""},
		{"RegionThree", "", ""},
	} {
		t.Run(tc.region+"/"+tc.iface, func(t *testing.T) {
			a := base
			a.RegionName, a.Interface = tc.region, tc.iface
			c, err := Connect(ctx, a, nil)
			if err != nil {
				t.Fatal(err)
			}
			net, netErr := c.Network(ctx, "")
			comp, compErr := c.Compute(ctx, "")
			if tc.want == "" {
				for _, err := range []error{netErr, compErr} {
					mustContain(t, err, "endpoint", "in the service catalog", "region "+tc.region)
				}
				return
			}
			if netErr != nil || compErr != nil {
				t.Fatal(netErr, compErr)
			}
			wantNet := f.URL() + "/network/" + tc.want + "/"
			if net.Endpoint != wantNet || net.ResourceBase != wantNet+"v2.0/" || net.Type != "network" {
				t.Errorf("network endpoint %q resources %q, want %q", net.Endpoint, net.ResourceBase, wantNet)
			}
			// gophercloud checked the unversioned network endpoint's versions.
			if got, want := f.requests()[len(f.requests())-1], "GET /network/"+tc.want+"/ "+c.Provider.Token(); got != want {
				t.Errorf("last request %q, want the version discovery %q", got, want)
			}
			wantComp := f.URL() + "/compute/" + tc.want + "/v2.1/" + sampleProjectID + "/"
			if comp.Endpoint != wantComp || comp.ResourceBaseURL() != wantComp || comp.Type != "compute" {
				t.Errorf("compute endpoint %q, want %q", comp.Endpoint, wantComp)
			}
		})
	}
}

func TestEndpointOverride(t *testing.T) {
	f := newFakeCloud(t, false)
	ctx := t.Context()
	c, err := Connect(ctx, Auth{AuthURL: f.URL() + "/v3", UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, override := range []string{f.URL() + "/override", f.URL() + "/override/", f.URL() + "/override/v2.0"} {
		net, err := c.Network(ctx, override)
		if err != nil {
			t.Fatal(err)
		}
		if net.Endpoint != f.URL()+"/override/" || net.ResourceBase != f.URL()+"/override/v2.0/" {
			t.Errorf("override %s: endpoint %q resources %q", override, net.Endpoint, net.ResourceBase)
		}
	}
	net, err := c.Network(ctx, f.URL()+"/override")
	if err != nil {
		t.Fatal(err)
	}
	if r := f.get(net, "networks"); r.URL.Path != "/override/v2.0/networks" || r.Header.Get("X-Auth-Token") != "token-1" || !strings.HasPrefix(r.UserAgent(), userAgent) {
		t.Errorf("request %s token %q agent %q, want /override/v2.0/networks with token-1 by %s", r.URL.Path, r.Header.Get("X-Auth-Token"), r.UserAgent(), userAgent)
	}

	comp, err := c.Compute(ctx, "http://nova.example:8774/v2.1")
	if err != nil {
		t.Fatal(err)
	}
	if comp.Endpoint != "http://nova.example:8774/v2.1/" {
		t.Errorf("compute endpoint %q", comp.Endpoint)
	}
	_, err = c.Network(ctx, "nova.example:9696")
	mustContain(t, err, "network endpoint override", "want an http(s) URL")
	_, err = c.Compute(ctx, "/v2.1")
	mustContain(t, err, "compute endpoint override")
}

func TestAuthenticationFailure(t *testing.T) {
	f := newFakeCloud(t, false)
	f.reject(true)
	ctx := t.Context()
	for _, tc := range []struct {
		auth   Auth
		who    string
		secret string
	}{
		{Auth{AuthURL: f.URL() + "/v3", Username: "admin", UserDomainName: "Default", Password: samplePassword, ProjectID: sampleProjectID},
			`user "admin" (domain "Default")`, samplePassword},
		{Auth{AuthURL: f.URL(), UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID},
			`user id "` + sampleUserID + `"`, samplePassword},
		{Auth{AuthURL: f.URL() + "/v3", ApplicationCredentialID: sampleAppCredID, ApplicationCredentialSecret: sampleAppCredSecret},
			`application credential "` + sampleAppCredID + `"`, sampleAppCredSecret},
		{Auth{AuthURL: f.URL() + "/v3", ApplicationCredentialName: "monitoring", UserID: sampleAppCredUserID, ApplicationCredentialSecret: sampleAppCredSecret},
			`application credential "monitoring" of user id "` + sampleAppCredUserID + `"`, sampleAppCredSecret},
	} {
		_, err := Connect(ctx, tc.auth, nil)
		mustContain(t, err, "authentication failed for "+tc.who+" at "+f.URL()+"/v3:", "401", "requires authentication")
		if !gophercloud.ResponseCodeIs(err, http.StatusUnauthorized) {
			t.Errorf("%v does not wrap gophercloud's 401", err)
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}

	// A Keystone that is not there.
	f.srv.Close()
	_, err := Connect(ctx, Auth{AuthURL: f.URL() + "/v3", UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID}, nil)
	mustContain(t, err, `authenticating user id "`+sampleUserID+`" at `+f.URL()+"/v3")
}

func TestReauthentication(t *testing.T) {
	f := newFakeCloud(t, false)
	ctx := t.Context()
	c, err := Connect(ctx, Auth{AuthURL: f.URL() + "/v3", Username: "admin", UserDomainName: "Default", Password: samplePassword,
		ProjectName: "admin", ProjectDomainID: "default"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	net, err := c.Network(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	f.expire("token-1")
	var got struct {
		Networks []any `json:"networks"`
	}
	if _, err := net.Get(ctx, net.ServiceURL("networks"), &got, nil); err != nil {
		t.Fatalf("GET networks after the token expired: %v", err)
	}
	want := []string{
		"GET /network/RegionOne/public/ token-1",              // version discovery
		"GET /network/RegionOne/public/v2.0/networks token-1", // 401
		"GET /network/RegionOne/public/v2.0/networks token-2", // retried with the new token
	}
	if got := f.requests(); !slices.Equal(got, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	bodies := f.bodies()
	if len(bodies) != 2 {
		t.Fatalf("%d token requests, want 2", len(bodies))
	}
	sameJSON(t, bodies[1], authRequest(t, reqUserNameDomain, reqProjectName))
	if tok := c.Provider.Token(); tok != "token-2" {
		t.Errorf("token %q after reauthentication, want token-2", tok)
	}

	// A Keystone refusing the reauthentication: the request fails.
	f.expire("token-2")
	f.reject(true)
	_, err = net.Get(ctx, net.ServiceURL("networks"), &got, nil)
	mustContain(t, err, "401")
	if strings.Contains(err.Error(), samplePassword) {
		t.Errorf("the error shows the password: %v", err)
	}
}

// cloudsYAML is a clouds.yaml whose clouds use the Keystone at %[1]s.
const cloudsYAML = `clouds:
  devstack:
    auth:
      auth_url: %[1]s/v3
      username: admin
      password: devstacker
      user_domain_name: Default
      project_name: admin
      project_domain_id: default
    region_name: RegionTwo
    interface: internal
  monitoring:
    auth_type: v3applicationcredential
    auth:
      auth_url: %[1]s
      application_credential_id: 423f19a4ac1e4f48bbb4180756e6eb6c
      application_credential_secret: rEaqvJka48mpv
    region_name: RegionOne
  incomplete:
    auth:
      auth_url: %[1]s/v3
      username: admin
      user_domain_name: Default
      project_name: admin
      project_domain_id: default
  no-auth-section:
    region_name: RegionOne
`

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCloudsYAML(t *testing.T) {
	f := newFakeCloud(t, false)
	ctx := t.Context()
	for _, env := range []string{"OS_CLOUD", "OS_CLIENT_CONFIG_FILE", "OS_CACERT", "OS_CERT", "OS_KEY"} {
		t.Setenv(env, "")
	}
	file := writeFile(t, t.TempDir(), "clouds.yaml", fmt.Sprintf(cloudsYAML, f.URL()))

	// connect authenticates as a and returns the network endpoint chosen
	// (relative to the server) and the token request.
	connect := func(t *testing.T, a Auth) (string, []byte) {
		t.Helper()
		c, err := Connect(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		net, err := c.Network(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		bodies := f.bodies()
		return strings.TrimPrefix(net.Endpoint, f.URL()), bodies[len(bodies)-1]
	}

	t.Run("password cloud from CloudsFile", func(t *testing.T) {
		endpoint, body := connect(t, Auth{Cloud: "devstack", CloudsFile: file})
		sameJSON(t, body, authRequest(t, reqUserNameDomain, reqProjectName))
		if endpoint != "/network/RegionTwo/internal/" {
			t.Errorf("network endpoint %s, want the cloud's region and interface", endpoint)
		}
	})
	t.Run("overrides", func(t *testing.T) {
		endpoint, body := connect(t, Auth{Cloud: "devstack", CloudsFile: file, RegionName: "RegionOne", Interface: "publicURL",
			UserID: sampleUserID, ProjectID: sampleProjectID})
		// The user and project ids replace the cloud's names.
		sameJSON(t, body, fixtureJSON(t, reqProjectID))
		if endpoint != "/network/RegionOne/public/" {
			t.Errorf("network endpoint %s, want the overrides' region and interface", endpoint)
		}
	})
	t.Run("application credential cloud from OS_CLIENT_CONFIG_FILE", func(t *testing.T) {
		t.Setenv("OS_CLIENT_CONFIG_FILE", file)
		t.Setenv("OS_CLOUD", "devstack")
		// Not consulted: Auth's fields are the overrides.
		t.Setenv("OS_REGION_NAME", "RegionTwo")
		t.Setenv("OS_INTERFACE", "internal")
		endpoint, body := connect(t, Auth{Cloud: "monitoring"})
		sameJSON(t, body, fixtureJSON(t, reqAppCredID))
		if endpoint != "/network/RegionOne/public/" {
			t.Errorf("network endpoint %s, want the cloud's region and the public interface", endpoint)
		}
	})
	t.Run("password from secure.yaml", func(t *testing.T) {
		dir := t.TempDir()
		file := writeFile(t, dir, "clouds.yaml", fmt.Sprintf(cloudsYAML, f.URL()))
		writeFile(t, dir, "secure.yaml", "clouds:\n  incomplete:\n    auth:\n      password: devstacker\n")
		_, body := connect(t, Auth{Cloud: "incomplete", CloudsFile: file})
		sameJSON(t, body, authRequest(t, reqUserNameDomain, reqProjectName))
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			auth Auth
			want []string
		}{
			{Auth{Cloud: "incomplete", CloudsFile: file}, []string{`cloud "incomplete": password auth needs a password`}},
			{Auth{Cloud: "incomplete", CloudsFile: file, Interface: "private"}, []string{`cloud "incomplete": interface "private"`}},
			{Auth{Cloud: "nowhere", CloudsFile: file}, []string{`cloud "nowhere"`, "not found"}},
			{Auth{Cloud: "no-auth-section", CloudsFile: file}, []string{`cloud "no-auth-section"`, "auth section"}},
			{Auth{Cloud: "devstack", CloudsFile: filepath.Join(t.TempDir(), "missing.yaml")}, []string{`cloud "devstack"`, "missing.yaml"}},
			{Auth{CloudsFile: file}, []string{"clouds file " + file + " is set but no cloud is named"}},
			{Auth{Cloud: "devstack", CloudsFile: file, NoAuth: true, ProjectID: "p"}, []string{"noauth and cloud"}},
		} {
			err := tc.auth.Validate()
			mustContain(t, err, tc.want...)
			if _, cerr := Connect(ctx, tc.auth, nil); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Connect: %v, want Validate's %v", cerr, err)
			}
		}
		if err := (Auth{Cloud: "incomplete", CloudsFile: file, Password: "x"}).Validate(); err != nil {
			t.Errorf("the password given completes the cloud: %v", err)
		}
	})
}

func TestValidate(t *testing.T) {
	const url = "http://keystone:5000/v3"
	pw := Auth{AuthURL: url, Username: "admin", UserDomainName: "Default", Password: samplePassword, ProjectName: "admin", ProjectDomainID: "default"}
	with := func(change func(*Auth)) Auth {
		a := pw
		change(&a)
		return a
	}
	appCred := Auth{AuthURL: url, ApplicationCredentialID: sampleAppCredID, ApplicationCredentialSecret: sampleAppCredSecret}
	for _, tc := range []struct {
		auth Auth
		want string // "" for valid
	}{
		{pw, ""},
		{appCred, ""},
		{Auth{AuthURL: "http://keystone:5000", UserID: sampleUserID, Password: "p", ProjectID: sampleProjectID}, ""},
		{Auth{NoAuth: true, ProjectID: "p"}, ""},
		{Auth{}, "auth_url is required"},
		{with(func(a *Auth) { a.AuthURL = "keystone:5000/v3" }), `auth_url "keystone:5000/v3": want an http(s) URL`},
		{with(func(a *Auth) { a.AuthURL = "http://keystone:5000/v2.0" }), `auth_url "http://keystone:5000/v2.0" is Keystone v2.0: want v3`},
		{with(func(a *Auth) { a.AuthType = "token" }), `auth_type "token": want password, v3password or v3applicationcredential`},
		{with(func(a *Auth) { a.Interface = "private" }), `interface "private": want public, internal or admin`},
		{with(func(a *Auth) { a.Password = "" }), "password auth needs a password"},
		{with(func(a *Auth) { a.Username = "" }), "password auth needs username or user_id"},
		{with(func(a *Auth) { a.UserDomainName = "" }), `username "admin" needs user_domain_name or user_domain_id`},
		{with(func(a *Auth) { a.ProjectName = "" }), "password auth needs project_name or project_id"},
		{with(func(a *Auth) { a.ProjectDomainID = "" }), `project_name "admin" needs project_domain_name or project_domain_id`},
		{with(func(a *Auth) { a.AuthType = AuthV3ApplicationCredential }), "application credential needs a secret"},
		{with(func(a *Auth) { a.CAFile = filepath.Join(t.TempDir(), "ca.pem") }), "cafile: open "},
		{Auth{AuthURL: url, ApplicationCredentialSecret: "s"}, "application credential needs application_credential_id or application_credential_name"},
		{Auth{AuthURL: url, ApplicationCredentialName: "monitoring", ApplicationCredentialSecret: "s"},
			`application_credential_name "monitoring" needs username or user_id`},
		{Auth{AuthURL: url, ApplicationCredentialName: "monitoring", Username: "demo", ApplicationCredentialSecret: "s"},
			`username "demo" needs user_domain_name or user_domain_id`},
		{Auth{NoAuth: true}, "noauth needs project_id"},
	} {
		err := tc.auth.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.auth, err)
			}
			continue
		}
		mustContain(t, err, "openstack: "+tc.want)
		if strings.Contains(err.Error(), samplePassword) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestTLS(t *testing.T) {
	f := newFakeCloud(t, true)
	ctx := t.Context()
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})))
	a := Auth{AuthURL: f.URL() + "/v3", UserID: sampleUserID, Password: samplePassword, ProjectID: sampleProjectID}

	if _, err := Connect(ctx, a, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA: %v, want a certificate error", err)
	}
	withCA := a
	withCA.CAFile = ca
	hc := &http.Client{}
	c, err := Connect(ctx, withCA, hc)
	if err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	if hc.Transport != nil {
		t.Error("Connect changed the caller's HTTP client")
	}
	// The services are reached with the same TLS settings.
	if _, err := c.Network(ctx, ""); err != nil {
		t.Fatalf("network with the CA: %v", err)
	}
	insecure := a
	insecure.Insecure = true
	if _, err := Connect(ctx, insecure, nil); err != nil {
		t.Errorf("insecure: %v", err)
	}
	// The CA from clouds.yaml.
	clouds := writeFile(t, dir, "clouds.yaml", fmt.Sprintf("clouds:\n  tls:\n    auth:\n      auth_url: %s\n      user_id: %s\n      password: %s\n      project_id: %s\n    cacert: %s\n",
		f.URL(), sampleUserID, samplePassword, sampleProjectID, ca))
	t.Setenv("OS_CACERT", "")
	if _, err := Connect(ctx, Auth{Cloud: "tls", CloudsFile: clouds}, nil); err != nil {
		t.Errorf("the cloud's cacert: %v", err)
	}

	_, err = Connect(ctx, withCA, &http.Client{Transport: roundTripper(http.DefaultTransport.RoundTrip)})
	mustContain(t, err, "cafile/insecure", "not an *http.Transport")
	bad := withCA
	bad.CAFile = writeFile(t, dir, "bad.pem", "not a certificate")
	mustContain(t, bad.Validate(), "cafile "+bad.CAFile+": no PEM certificate")
}

// roundTripper is an http.RoundTripper that is not an *http.Transport.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNoAuth(t *testing.T) {
	f := newFakeCloud(t, false)
	ctx := t.Context()
	c, err := Connect(ctx, Auth{NoAuth: true, ProjectID: "p1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Network(ctx, ""); err == nil {
		t.Error("noauth network without an endpoint override: no error")
	}
	if _, err := c.Compute(ctx, ""); err == nil {
		t.Error("noauth compute without an endpoint override: no error")
	}
	net, err := c.Network(ctx, f.URL()+"/v2.0")
	if err != nil {
		t.Fatal(err)
	}
	if r := f.get(net, "networks"); r.URL.Path != "/v2.0/networks" || r.Header.Get("X-Project-Id") != "p1" || r.Header.Get("X-Roles") != "admin" || r.Header.Get("X-Auth-Token") != "" {
		t.Errorf("noauth request %s with headers %v", r.URL.Path, r.Header)
	}
	comp, err := c.Compute(ctx, f.URL()+"/v2.1")
	if err != nil {
		t.Fatal(err)
	}
	if r := f.get(comp, "servers"); r.URL.Path != "/v2.1/servers" || r.Header.Get("X-Auth-Token") != "admin:p1" {
		t.Errorf("noauth compute request %s with headers %v", r.URL.Path, r.Header)
	}
	if n := len(f.bodies()); n != 0 {
		t.Errorf("%d token requests with noauth", n)
	}
}

func TestRedaction(t *testing.T) {
	a := Auth{AuthURL: "http://astara:urlsecret@keystone:5000/v3", Username: "admin", Password: "pw-secret",
		ApplicationCredentialID: "ac", ApplicationCredentialSecret: "ac-secret", Insecure: true}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
		out = append(out, fmt.Sprintf(verb, a), fmt.Sprintf(verb, &a))
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("connecting", "auth", a)
	out = append(out, a.String(), logged.String())
	for _, s := range out {
		for _, secret := range []string{"urlsecret", "pw-secret", "ac-secret"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows %s", s, secret)
			}
		}
	}
	if want := "openstack.Auth{auth_url=http://astara:xxxxx@keystone:5000/v3 username=admin password=[REDACTED] " +
		"application_credential_id=ac application_credential_secret=[REDACTED] insecure=true}"; a.String() != want {
		t.Errorf("String\n %s\nwant\n %s", a, want)
	}
	if !strings.Contains(logged.String(), `"auth":{"auth_url":"http://astara:xxxxx@keystone:5000/v3","username":"admin","password":"[REDACTED]"`) {
		t.Errorf("logged %s", logged.String())
	}
}

func TestIdentityEndpoint(t *testing.T) {
	for raw, want := range map[string]string{
		"http://keystone:5000/v3":              "http://keystone:5000/v3",
		"http://keystone:5000/v3/":             "http://keystone:5000/v3",
		"http://keystone:5000":                 "http://keystone:5000/v3",
		"https://cloud.example/identity":       "https://cloud.example/identity/v3",
		"https://cloud.example/identity/v3.14": "https://cloud.example/identity/v3.14",
	} {
		if got, err := identityEndpoint(raw); err != nil || got != want {
			t.Errorf("identityEndpoint(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
}
