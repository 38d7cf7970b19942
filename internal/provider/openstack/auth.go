// Package openstack authenticates to an OpenStack cloud (Keystone v3, by
// password or application credential, from explicit settings or a
// clouds.yaml entry) and makes gophercloud v2 service clients for Neutron
// (network) and Nova (compute) from its service catalog.
package openstack

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
)

// The values of Auth.AuthType.
const (
	AuthPassword                = "password"
	AuthV3Password              = "v3password"
	AuthV3ApplicationCredential = "v3applicationcredential"
)

// Auth says how to reach and authenticate to a cloud. Where both an id and a
// name identify the same thing (user, project, domain, application
// credential), the id wins and the name is not sent, as keystoneauth does.
type Auth struct {
	// Cloud names an entry of clouds.yaml, found as gophercloud's
	// openstack/config/clouds finds it (OS_CLIENT_CONFIG_FILE, else
	// ./clouds.yaml, ~/.config/openstack/clouds.yaml,
	// /etc/openstack/clouds.yaml, with secure.yaml beside it); CloudsFile,
	// if set, is the file to read instead. The fields below that are set
	// override the entry's; an id or name set replaces both the entry's id
	// and name of that user, project, domain or application credential.
	// OS_REGION_NAME and OS_INTERFACE are not consulted (RegionName and
	// Interface are the overrides); OS_CACERT, OS_CERT and OS_KEY are, as
	// gophercloud does.
	Cloud, CloudsFile string

	// AuthURL is Keystone's v3 URL, e.g. http://keystone:5000/v3; a URL
	// without a version gets /v3 appended.
	AuthURL string
	// AuthType is AuthPassword, AuthV3Password, AuthV3ApplicationCredential
	// or empty: application credential if any of its fields is set, else
	// password.
	AuthType string

	Username, UserID, Password   string
	UserDomainName, UserDomainID string

	// The project the token is scoped to (password auth only: an
	// application credential carries its own).
	ProjectName, ProjectID             string
	ProjectDomainName, ProjectDomainID string

	ApplicationCredentialID, ApplicationCredentialName, ApplicationCredentialSecret string

	// RegionName selects the catalog's endpoints of that region (empty:
	// the first matching endpoint of any region).
	RegionName string
	// Interface selects the catalog's endpoints: public (default),
	// internal or admin; publicURL, internalURL and adminURL (the
	// original's endpoint_type) are accepted too.
	Interface string

	// CAFile is a PEM file of the CAs to trust instead of the system's;
	// Insecure skips the verification of TLS certificates altogether.
	CAFile   string
	Insecure bool

	// NoAuth means no Keystone at all: services are reached at endpoint
	// overrides and trust what requests claim. Network requests carry
	// identity headers (X-Project-Id ProjectID, X-Roles admin) as
	// Neutron's noauth and the embedded network API take them (see
	// neutron.NoAuthClient); compute requests the token admin:ProjectID as
	// Nova's noauth2 takes it.
	NoAuth bool
}

// method is how an Auth authenticates.
type method int

const (
	methodPassword method = iota
	methodAppCred
)

// method returns how a authenticates, from AuthType or the fields set.
func (a Auth) method() (method, error) {
	switch a.AuthType {
	case AuthPassword, AuthV3Password:
		return methodPassword, nil
	case AuthV3ApplicationCredential:
		return methodAppCred, nil
	case "":
		if a.ApplicationCredentialID != "" || a.ApplicationCredentialName != "" || a.ApplicationCredentialSecret != "" {
			return methodAppCred, nil
		}
		return methodPassword, nil
	}
	return 0, fmt.Errorf("auth_type %q: want %s, %s or %s", a.AuthType, AuthPassword, AuthV3Password, AuthV3ApplicationCredential)
}

// Validate reports the first missing or contradictory setting, naming it
// (as clouds.yaml does). With Cloud set it reads clouds.yaml and checks the
// settings it gives with a's overrides.
func (a Auth) Validate() error {
	_, err := a.resolve()
	return err
}

// resolved is an Auth merged with its clouds.yaml entry and checked.
type resolved struct {
	Auth
	// tls is the TLS configuration asked for, nil for the HTTP client's own.
	tls *tls.Config
}

// resolve merges a with its clouds.yaml entry (if any) and checks the result.
func (a Auth) resolve() (resolved, error) {
	if a.Cloud == "" {
		if a.CloudsFile != "" {
			return resolved{}, fmt.Errorf("openstack: clouds file %s is set but no cloud is named", a.CloudsFile)
		}
		r := resolved{Auth: a}
		var err error
		if r.tls, err = tlsConfig(a.CAFile, a.Insecure); err != nil {
			return resolved{}, fmt.Errorf("openstack: %w", err)
		}
		if err := r.check(); err != nil {
			return resolved{}, fmt.Errorf("openstack: %w", err)
		}
		return r, nil
	}
	if a.NoAuth {
		return resolved{}, fmt.Errorf("openstack: noauth and cloud %q contradict: noauth uses no Keystone", a.Cloud)
	}
	r, err := fromCloud(a)
	if err == nil {
		err = r.check()
	}
	if err != nil {
		return resolved{}, fmt.Errorf("openstack: cloud %q: %w", a.Cloud, err)
	}
	return r, nil
}

// check reports the first missing or contradictory setting of a.
func (a Auth) check() error {
	if _, err := availability(a.Interface); err != nil {
		return err
	}
	if a.NoAuth {
		if a.ProjectID == "" {
			return errors.New("noauth needs project_id (the X-Project-Id its requests carry)")
		}
		return nil
	}
	if _, err := identityEndpoint(a.AuthURL); err != nil {
		return err
	}
	m, err := a.method()
	if err != nil {
		return err
	}
	if m == methodAppCred {
		switch {
		case a.ApplicationCredentialSecret == "":
			return errors.New("application credential needs a secret (application_credential_secret)")
		case a.ApplicationCredentialID != "":
			return nil
		case a.ApplicationCredentialName == "":
			return errors.New("application credential needs application_credential_id or application_credential_name")
		}
		return a.checkUser(fmt.Sprintf("application_credential_name %q", a.ApplicationCredentialName))
	}
	if a.Password == "" {
		return errors.New("password auth needs a password")
	}
	if err := a.checkUser("password auth"); err != nil {
		return err
	}
	switch {
	case a.ProjectID != "":
		return nil
	case a.ProjectName == "":
		return errors.New("password auth needs project_name or project_id (a project-scoped token has the service catalog)")
	case a.ProjectDomainID == "" && a.ProjectDomainName == "":
		return fmt.Errorf("project_name %q needs project_domain_name or project_domain_id", a.ProjectName)
	}
	return nil
}

// checkUser reports what is missing to identify the user, for what.
func (a Auth) checkUser(what string) error {
	switch {
	case a.UserID != "":
		return nil
	case a.Username == "":
		return fmt.Errorf("%s needs username or user_id", what)
	case a.UserDomainID == "" && a.UserDomainName == "":
		return fmt.Errorf("username %q needs user_domain_name or user_domain_id", a.Username)
	}
	return nil
}

// authOptions returns the gophercloud options authenticating as a (checked)
// at endpoint, allowed to reauthenticate.
func (a Auth) authOptions(endpoint string) gophercloud.AuthOptions {
	o := gophercloud.AuthOptions{IdentityEndpoint: endpoint, AllowReauth: true}
	user := func() {
		if a.UserID != "" {
			o.UserID = a.UserID
			return
		}
		o.Username = a.Username
		if a.UserDomainID != "" {
			o.DomainID = a.UserDomainID
		} else {
			o.DomainName = a.UserDomainName
		}
	}
	if m, _ := a.method(); m == methodAppCred {
		// gophercloud sends no scope with an application credential.
		o.ApplicationCredentialSecret = a.ApplicationCredentialSecret
		if a.ApplicationCredentialID != "" {
			o.ApplicationCredentialID = a.ApplicationCredentialID
		} else {
			o.ApplicationCredentialName = a.ApplicationCredentialName
			user()
		}
		return o
	}
	o.Password = a.Password
	user()
	switch {
	case a.ProjectID != "":
		o.Scope = &gophercloud.AuthScope{ProjectID: a.ProjectID}
	case a.ProjectDomainID != "":
		o.Scope = &gophercloud.AuthScope{ProjectName: a.ProjectName, DomainID: a.ProjectDomainID}
	default:
		o.Scope = &gophercloud.AuthScope{ProjectName: a.ProjectName, DomainName: a.ProjectDomainName}
	}
	return o
}

// who names the identity a authenticates as, for errors (never a secret).
func (a Auth) who() string {
	user := fmt.Sprintf("user %q (domain %q)", a.Username, first(a.UserDomainID, a.UserDomainName))
	if a.UserID != "" {
		user = fmt.Sprintf("user id %q", a.UserID)
	}
	switch m, _ := a.method(); {
	case m != methodAppCred:
		return user
	case a.ApplicationCredentialID != "":
		return fmt.Sprintf("application credential %q", a.ApplicationCredentialID)
	default:
		return fmt.Sprintf("application credential %q of %s", a.ApplicationCredentialName, user)
	}
}

// first returns the first non-empty string of s, or "".
func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// keystoneVersion matches the last path element of a Keystone URL that names
// its version.
var keystoneVersion = regexp.MustCompile(`^v([0-9]+)(\.[0-9]+)?$`)

// identityEndpoint returns Keystone's v3 URL from auth_url raw: /v3 is
// appended to a URL without a version; v2.0 is refused.
func identityEndpoint(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("auth_url is required (Keystone's v3 URL, e.g. http://keystone:5000/v3)")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("auth_url %q: want an http(s) URL", redactURL(raw))
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	switch m := keystoneVersion.FindStringSubmatch(path.Base(u.Path)); {
	case m == nil:
		u.Path += "/v3"
	case m[1] != "3":
		return "", fmt.Errorf("auth_url %q is Keystone v%s%s: want v3", u.Redacted(), m[1], m[2])
	}
	return u.String(), nil
}

// availability returns the catalog interface named by iface.
func availability(iface string) (gophercloud.Availability, error) {
	switch iface {
	case "", "public", "publicURL":
		return gophercloud.AvailabilityPublic, nil
	case "internal", "internalURL":
		return gophercloud.AvailabilityInternal, nil
	case "admin", "adminURL":
		return gophercloud.AvailabilityAdmin, nil
	}
	return "", fmt.Errorf("interface %q: want public, internal or admin", iface)
}

// tlsConfig returns the TLS configuration trusting the CAs of caFile and
// skipping verification if insecure, or nil if neither is asked for.
func tlsConfig(caFile string, insecure bool) (*tls.Config, error) {
	if caFile == "" && !insecure {
		return nil, nil
	}
	c := &tls.Config{InsecureSkipVerify: insecure} //nolint:gosec // asked for (insecure)
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("cafile: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cafile %s: no PEM certificate in it", caFile)
		}
	}
	return c, nil
}

// redactURL returns raw with any password it carries replaced by xxxxx.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return raw
}

// redacted stands in for a secret that is set.
const redacted = "[REDACTED]"

// LogValue returns a's settings that are set, secrets redacted.
func (a Auth) LogValue() slog.Value {
	secret := func(s string) string {
		if s == "" {
			return ""
		}
		return redacted
	}
	fields := []struct{ key, value string }{
		{"cloud", a.Cloud}, {"clouds_file", a.CloudsFile},
		{"auth_url", redactURL(a.AuthURL)}, {"auth_type", a.AuthType},
		{"username", a.Username}, {"user_id", a.UserID}, {"password", secret(a.Password)},
		{"user_domain_name", a.UserDomainName}, {"user_domain_id", a.UserDomainID},
		{"project_name", a.ProjectName}, {"project_id", a.ProjectID},
		{"project_domain_name", a.ProjectDomainName}, {"project_domain_id", a.ProjectDomainID},
		{"application_credential_id", a.ApplicationCredentialID},
		{"application_credential_name", a.ApplicationCredentialName},
		{"application_credential_secret", secret(a.ApplicationCredentialSecret)},
		{"region_name", a.RegionName}, {"interface", a.Interface}, {"cafile", a.CAFile},
	}
	var attrs []slog.Attr
	for _, f := range fields {
		if f.value != "" {
			attrs = append(attrs, slog.String(f.key, f.value))
		}
	}
	if a.Insecure {
		attrs = append(attrs, slog.Bool("insecure", true))
	}
	if a.NoAuth {
		attrs = append(attrs, slog.Bool("noauth", true))
	}
	return slog.GroupValue(attrs...)
}

// String returns a's settings that are set, secrets redacted.
func (a Auth) String() string {
	var b strings.Builder
	b.WriteString("openstack.Auth{")
	for i, attr := range a.LogValue().Group() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", attr.Key, attr.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// Format writes String for every verb, so that no verb (%#v, %d, ...)
// prints a secret.
func (a Auth) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, a.String())
}
