package netapi

import (
	"html"
	"net/http"
)

// extension is one entry of GET /v2.0/extensions.
type extension struct {
	alias, name, description string
}

// extensions are the API extensions the embedded API implements, with
// Neutron's aliases and names.
var extensions = []extension{
	{"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"},
	{"binding", "Port Binding", "Expose port bindings of a virtual port to external application"},
	{"empty-string-filtering", "Empty String Filtering Extension", "Allow filtering by attributes with empty string value"},
	{"external-net", "Neutron external network", "Adds external network attribute to network resource."},
	{"ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"},
	{"extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"},
	{"extraroute-atomic", "Atomically add/remove extra routes", "Edit extra routes of a router on server side by atomically adding/removing extra routes"},
	{"filter-validation", "Filter parameters validation", "Provides validation on filter parameters."},
	{"fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource"},
	{"ip-substring-filtering", "IP address substring filtering", "Provides IP address substring filtering when listing ports"},
	{"net-mtu", "Network MTU", "Provides MTU attribute for a network resource."},
	{"net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource."},
	{"pagination", "Pagination support", "Extension that indicates that pagination is enabled."},
	{"port-security", "Port Security", "Provides port security"},
	{"project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."},
	{"provider", "Provider Network", "Expose mapping of virtual networks to physical networks"},
	{"revision-if-match", "If-Match constraints based on revision_number", "Extension indicating that If-Match based on revision_number is supported."},
	{"router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."},
	{"sorting", "Sorting support", "Extension that indicates that sorting is enabled."},
	{"standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"},
	{"standard-attr-revisions", "Resource revision numbers", "This extension will display the revision number of neutron resources."},
	{"standard-attr-tag", "Tag support for resources with standard attribute: subnet, router, network, port, floatingip", "Enables to set tag on resources with standard attribute."},
	{"standard-attr-timestamp", "Resource timestamps", "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes."},
	{"subnet-service-types", "Subnet service types", "Provides ability to set the subnet service_types field"},
}

func renderExtension(e extension) object {
	return object{
		{"name", e.name},
		{"alias", e.alias},
		{"description", e.description},
		{"updated", "2013-01-01T10:00:00-00:00"},
		{"links", []object{}},
	}
}

func (s *Server) listExtensions(_ http.ResponseWriter, _ *http.Request, _ *caller) (int, any, error) {
	out := make([]object, 0, len(extensions))
	for _, e := range extensions {
		out = append(out, renderExtension(e))
	}
	return http.StatusOK, object{{"extensions", out}}, nil
}

func (s *Server) showExtension(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	alias := r.PathValue("alias")
	for _, e := range extensions {
		if e.alias == alias {
			return http.StatusOK, object{{"extension", renderExtension(e)}}, nil
		}
	}
	// Neutron's extension controller answers webob's HTML page here.
	return http.StatusNotFound, htmlPage{"404 Not Found", "The resource could not be found.<br /><br />\nExtension with alias " + html.EscapeString(alias) + " does not exist\n\n"}, nil
}

// htmlPage is a response webob renders as HTML rather than a NeutronError.
type htmlPage struct{ title, text string }

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// versions is GET /: the API versions document clients discover v2.0 with.
func (s *Server) versions(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	v := object{
		{"id", "v2.0"},
		{"status", "CURRENT"},
		{"links", []object{{{"href", baseURL(r) + "/v2.0/"}, {"rel", "self"}}}},
	}
	return http.StatusOK, object{{"versions", []object{v}}}, nil
}

// resources is GET /v2.0/: the collections of the API.
func (s *Server) resources(_ http.ResponseWriter, r *http.Request, _ *caller) (int, any, error) {
	var out []object
	for _, c := range []struct{ name, coll string }{
		{"subnet", "subnets"}, {"network", "networks"}, {"port", "ports"},
		{"router", "routers"}, {"floatingip", "floatingips"},
	} {
		out = append(out, object{
			{"links", []object{{{"href", baseURL(r) + "/v2.0/" + c.coll}, {"rel", "self"}}}},
			{"name", c.name},
			{"collection", c.coll},
		})
	}
	return http.StatusOK, object{{"resources", out}}, nil
}

func notFound(_ http.ResponseWriter, _ *http.Request, _ *caller) (int, any, error) {
	return 0, nil, errNotFound("HTTPNotFound", "The resource could not be found.")
}

// routes builds the API's routes.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn handlerFunc) { mux.Handle(pattern, s.handle(fn)) }
	h("GET /{$}", s.versions)
	h("GET /v2.0", s.resources)
	h("GET /v2.0/{$}", s.resources)
	h("GET /v2.0/extensions", s.listExtensions)
	h("GET /v2.0/extensions/{alias}", s.showExtension)
	for _, res := range []struct {
		coll                                   string
		list, show, create, update, deleteFunc handlerFunc
	}{
		{"networks", s.listNetworks, s.showNetwork, s.create("network", networkAttrs, s.prepareNetwork), s.updateNetwork, s.deleteNetwork},
		{"subnets", s.listSubnets, s.showSubnet, s.create("subnet", subnetAttrs, s.prepareSubnet), s.updateSubnet, s.deleteSubnet},
		{"ports", s.listPorts, s.showPort, s.create("port", portAttrs, s.preparePort), s.updatePort, s.deletePort},
		{"routers", s.listRouters, s.showRouter, s.create("router", routerAttrs, s.prepareRouter), s.updateRouter, s.deleteRouter},
		{"floatingips", s.listFloatingIPs, s.showFloatingIP, s.create("floatingip", floatingIPAttrs, s.prepareFloatingIP), s.updateFloatingIP, s.deleteFloatingIP},
	} {
		h("GET /v2.0/"+res.coll, res.list)
		h("POST /v2.0/"+res.coll, res.create)
		h("GET /v2.0/"+res.coll+"/{id}", res.show)
		h("PUT /v2.0/"+res.coll+"/{id}", res.update)
		h("DELETE /v2.0/"+res.coll+"/{id}", res.deleteFunc)
	}
	h("PUT /v2.0/routers/{id}/add_router_interface", s.addRouterInterface)
	h("PUT /v2.0/routers/{id}/remove_router_interface", s.removeRouterInterface)
	h("PUT /v2.0/routers/{id}/add_extraroutes", s.extraRoutes(true))
	h("PUT /v2.0/routers/{id}/remove_extraroutes", s.extraRoutes(false))
	h("GET /v2.0/{collection}/{id}/tags", s.listTags)
	h("PUT /v2.0/{collection}/{id}/tags", s.replaceTags)
	h("DELETE /v2.0/{collection}/{id}/tags", s.deleteTags)
	h("GET /v2.0/{collection}/{id}/tags/{tag}", s.showTag)
	h("PUT /v2.0/{collection}/{id}/tags/{tag}", s.addTag)
	h("DELETE /v2.0/{collection}/{id}/tags/{tag}", s.deleteTag)
	h("/", notFound)
	return stripJSONSuffix(mux)
}
