package openstack

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
)

// fromCloud returns a's clouds.yaml entry overridden by the fields a sets.
func fromCloud(a Auth) (resolved, error) {
	// An invalid interface would be read by clouds.Parse as public.
	if _, err := availability(a.Interface); err != nil {
		return resolved{}, err
	}
	opts := []clouds.ParseOption{
		clouds.WithCloudName(a.Cloud),
		// Set even when empty, so that OS_REGION_NAME and OS_INTERFACE
		// are not read: a's fields are the overrides.
		clouds.WithRegion(a.RegionName),
		clouds.WithEndpointType(a.Interface),
		clouds.WithCACertPath(a.CAFile),
	}
	if a.CloudsFile != "" {
		opts = append(opts, clouds.WithLocations(a.CloudsFile))
	}
	if a.Insecure {
		opts = append(opts, clouds.WithInsecure(true))
	}
	ao, eo, tc, err := parseClouds(opts...)
	if err != nil {
		return resolved{}, err
	}
	if ao.TokenID != "" {
		return resolved{}, errors.New("token auth is not supported: use a password or an application credential")
	}
	c := Auth{
		Cloud:                       a.Cloud,
		CloudsFile:                  a.CloudsFile,
		AuthURL:                     ao.IdentityEndpoint,
		Username:                    ao.Username,
		UserID:                      ao.UserID,
		Password:                    ao.Password,
		UserDomainName:              ao.DomainName,
		UserDomainID:                ao.DomainID,
		ApplicationCredentialID:     ao.ApplicationCredentialID,
		ApplicationCredentialName:   ao.ApplicationCredentialName,
		ApplicationCredentialSecret: ao.ApplicationCredentialSecret,
		RegionName:                  eo.Region,
		Interface:                   string(eo.Availability),
	}
	if s := ao.Scope; s != nil {
		switch {
		case s.System || s.TrustID != "":
			return resolved{}, errors.New("system and trust scopes are not supported: scope to a project")
		case s.ProjectID != "":
			c.ProjectID = s.ProjectID
		case s.ProjectName != "":
			c.ProjectName, c.ProjectDomainID, c.ProjectDomainName = s.ProjectName, s.DomainID, s.DomainName
		}
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&c.AuthURL, a.AuthURL}, {&c.AuthType, a.AuthType}, {&c.Password, a.Password},
		{&c.ApplicationCredentialSecret, a.ApplicationCredentialSecret},
		{&c.RegionName, a.RegionName}, {&c.Interface, a.Interface}, {&c.CAFile, a.CAFile},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	// An id or a name set replaces both the entry's id and name of that
	// thing, or the entry's id would win over the name set.
	for _, f := range []struct {
		id, name       *string
		setID, setName string
	}{
		{&c.UserID, &c.Username, a.UserID, a.Username},
		{&c.UserDomainID, &c.UserDomainName, a.UserDomainID, a.UserDomainName},
		{&c.ProjectID, &c.ProjectName, a.ProjectID, a.ProjectName},
		{&c.ProjectDomainID, &c.ProjectDomainName, a.ProjectDomainID, a.ProjectDomainName},
		{&c.ApplicationCredentialID, &c.ApplicationCredentialName, a.ApplicationCredentialID, a.ApplicationCredentialName},
	} {
		if f.setID != "" || f.setName != "" {
			*f.id, *f.name = f.setID, f.setName
		}
	}
	c.Insecure = a.Insecure || (tc != nil && tc.InsecureSkipVerify)
	return resolved{Auth: c, tls: usedTLS(tc)}, nil
}

// parseClouds is clouds.Parse, with its panic on an entry without an auth
// section (gophercloud v2.15.0 dereferences the missing section) turned into
// an error.
func parseClouds(opts ...clouds.ParseOption) (ao gophercloud.AuthOptions, eo gophercloud.EndpointOpts, tc *tls.Config, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unusable clouds.yaml entry (has it an auth section?): %v", p)
		}
	}()
	return clouds.Parse(opts...)
}

// usedTLS returns c if it asks for anything (CAs, client certificates, no
// verification), else nil.
func usedTLS(c *tls.Config) *tls.Config {
	if c == nil || (c.RootCAs == nil && len(c.Certificates) == 0 && !c.InsecureSkipVerify) {
		return nil
	}
	return c
}
