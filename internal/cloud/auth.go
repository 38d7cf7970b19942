package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/provider/openstack"
)

// auth returns the authentication [keystone_authtoken] describes.
func auth(cfg *config.Config) openstack.Auth {
	k := cfg.Keystone
	a := openstack.Auth{
		Cloud: k.Cloud, CloudsFile: k.CloudsFile,
		AuthURL: k.AuthURL, AuthType: k.AuthType,
		Username: k.Username, UserID: k.UserID, Password: k.Password,
		UserDomainName: k.UserDomainName, UserDomainID: k.UserDomainID,
		ProjectName: k.ProjectName, ProjectID: k.ProjectID,
		ProjectDomainName: k.ProjectDomainName, ProjectDomainID: k.ProjectDomainID,
		ApplicationCredentialID: k.ApplicationCredentialID, ApplicationCredentialName: k.ApplicationCredentialName,
		ApplicationCredentialSecret: k.ApplicationCredentialSecret,
		RegionName:                  k.RegionName, Interface: k.Interface,
		CAFile: k.CAFile, Insecure: k.Insecure,
	}
	if k.AuthType == config.AuthNone {
		a.AuthType, a.NoAuth = "", true
		if a.ProjectID == "" {
			a.ProjectID = NoAuthProject
		}
	}
	// The defaults of the domains must not hide a cloud's own.
	if k.Cloud != "" {
		if !cfg.IsSet("keystone_authtoken", "user_domain_name") {
			a.UserDomainName = ""
		}
		if !cfg.IsSet("keystone_authtoken", "project_domain_name") {
			a.ProjectDomainName = ""
		}
		if !cfg.IsSet("keystone_authtoken", "interface") {
			a.Interface = ""
		}
	}
	return a
}

// checkAuth checks that [keystone_authtoken] and the endpoint overrides
// say how to reach the services.
func checkAuth(cfg *config.Config) error {
	a := auth(cfg)
	if err := a.Validate(); err != nil {
		return fmt.Errorf("[keystone_authtoken]: %w", err)
	}
	if a.NoAuth {
		if cfg.Neutron.EndpointOverride == "" {
			return fmt.Errorf("[keystone_authtoken] auth_type %s (no Keystone) needs [neutron] endpoint_override", config.AuthNone)
		}
		if cfg.ComputeProvider == config.ComputeNova && cfg.Nova.EndpointOverride == "" {
			return fmt.Errorf("[keystone_authtoken] auth_type %s (no Keystone) with compute_provider %s needs [nova] endpoint_override",
				config.AuthNone, config.ComputeNova)
		}
	}
	return nil
}

// connect authenticates and returns the service clients the
// configuration needs.
func connect(ctx context.Context, cfg *config.Config, hc *http.Client, log *slog.Logger) (*clients, error) {
	a := auth(cfg)
	oc, err := openstack.Connect(ctx, a, hc)
	if err != nil {
		return nil, err
	}
	log.Info("authenticated to the cloud", "auth", a)
	var c clients
	if c.network, err = oc.Network(ctx, cfg.Neutron.EndpointOverride); err != nil {
		return nil, err
	}
	if cfg.ComputeProvider == config.ComputeNova {
		if c.compute, err = oc.Compute(ctx, cfg.Nova.EndpointOverride); err != nil {
			return nil, err
		}
	}
	return &c, nil
}
