package neutron

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// Extension aliases the provider looks for.
const (
	extRouterStatus = "dhrouterstatus" // Astara's Neutron extension: PUT /dhrouterstatus/<id>
	extPortSecurity = "port-security"
	extDescription  = "standard-attr-description"
)

// extensionSet is the API's extensions, as GET /v2.0/extensions lists them.
type extensionSet struct {
	// listed is false when the API has no extension listing (404): then
	// nothing is known, and optional attributes are tried.
	listed  bool
	aliases map[string]bool
}

// has reports whether the extension is listed.
func (s *extensionSet) has(alias string) bool { return s.aliases[alias] }

// mayHave reports whether the extension may be there: listed, or unknown.
func (s *extensionSet) mayHave(alias string) bool { return !s.listed || s.aliases[alias] }

// extensions returns the API's extensions, listed once and then cached:
// an extension enabled later is seen after a restart.
func (p *Provider) extensions(ctx context.Context) (*extensionSet, error) {
	if s := p.ext.Load(); s != nil {
		return s, nil
	}
	select {
	case p.extSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("listing the network API's extensions: %w", context.Cause(ctx))
	}
	defer func() { <-p.extSem }()
	if s := p.ext.Load(); s != nil {
		return s, nil
	}
	s := &extensionSet{listed: true, aliases: map[string]bool{}}
	err := p.do(ctx, "ListExtensions", idempotent, func(ctx context.Context) error {
		clear(s.aliases)
		return extensions.List(p.client).EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
			exts, err := extensions.ExtractExtensions(page)
			if err != nil {
				return false, err
			}
			for _, e := range exts {
				s.aliases[e.Alias] = true
			}
			return true, nil
		})
	})
	switch {
	case is404(err):
		s = &extensionSet{}
		p.log.InfoContext(ctx, "the network API lists no extensions: optional attributes will be tried")
	case err != nil:
		return nil, fmt.Errorf("listing the network API's extensions: %w", err)
	}
	p.ext.Store(s)
	return s, nil
}
