package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/provider"
	"github.com/astara-go/astara/internal/scheduler"
	"github.com/astara-go/astara/internal/state"
	"github.com/astara-go/astara/internal/store"
	"github.com/astara-go/astara/internal/worker"
)

// routeList lists the API's routes, for GET /.
var routeList = []string{
	"PUT /poll",
	"PUT /workers/debug",
	"PUT /config/reload",
	"PUT /global/debug/{enable|disable}[/--reason/<text>]",
	"PUT /tenant/{debug|manage}/<tenant_id>[/--reason/<text>]",
	"PUT /resource/{debug|manage|update|rebuild}/<resource_id>[/--reason/<text>][/--image_uuid/<image>]",
	"PUT /router/{debug|manage|update|rebuild}/<router_id>[/--reason/<text>][/--router_image_uuid/<image>]",
	"GET /resources[?state=&machine_state=&tenant=&driver=&debug=&stale=]",
	"GET /resources/<resource_id>",
	"GET /workers",
	"GET /debug",
	"GET /metrics",
	"GET /healthz",
}

func (s *Server) routes(metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"service": "astara-orchestrator", "routes": routeList})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /resources", s.listResources)
	mux.HandleFunc("GET /resources/{id}", s.getResource)
	mux.HandleFunc("GET /workers", s.getWorkers)
	mux.HandleFunc("GET /debug", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.opts.Scheduler.DebugModes())
	})

	mux.HandleFunc("PUT /poll", func(w http.ResponseWriter, r *http.Request) {
		s.simple(w, r, 1, event.CommandArgs{Name: event.CmdPoll})
	})
	mux.HandleFunc("PUT /workers/debug", func(w http.ResponseWriter, r *http.Request) {
		s.simple(w, r, 2, event.CommandArgs{Name: event.CmdWorkersDebug})
	})
	mux.HandleFunc("PUT /config/reload", func(w http.ResponseWriter, r *http.Request) {
		s.simple(w, r, 2, event.CommandArgs{Name: event.CmdConfigReload})
	})
	for _, p := range []struct {
		pattern string
		h       http.HandlerFunc
	}{
		{"PUT /global/debug/{mode}", s.globalDebug},
		{"PUT /tenant/{cmd}/{id}", s.tenantCommand},
		{"PUT /resource/{cmd}/{id}", s.resourceCommand},
		{"PUT /router/{cmd}/{id}", s.routerCommand},
	} {
		mux.HandleFunc(p.pattern, p.h)
		mux.HandleFunc(p.pattern+"/{opts...}", p.h)
	}
	notImplemented := func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, errors.New("interactive commands (browse, ssh) are not available through the API"))
	}
	mux.HandleFunc("PUT /browse", notImplemented)
	mux.HandleFunc("PUT /ssh/{rest...}", notImplemented)
	return s.authorize(mux)
}

// commandResponse is the answer to a command.
type commandResponse struct {
	Status  string                `json:"status"`
	Command event.CommandArgs     `json:"command"`
	Workers []worker.WorkerStatus `json:"workers,omitempty"`
}

// simple runs a command without arguments, whose route has n segments.
func (s *Server) simple(w http.ResponseWriter, r *http.Request, n int, c event.CommandArgs) {
	if _, err := commandArgs(r, n, nil); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.run(w, r, c)
}

// run carries out a command and answers.
func (s *Server) run(w http.ResponseWriter, r *http.Request, c event.CommandArgs) {
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.CommandTimeout)
	defer cancel()
	log := s.log.With("command", string(c.Name), "resource_id", c.ResourceID, "tenant_id", c.TenantID, "remote", r.RemoteAddr)
	if err := s.opts.Scheduler.Command(ctx, c); err != nil {
		code := statusOf(err)
		log.Warn("management API: command failed", "status", code, "err", err)
		writeError(w, code, err)
		return
	}
	log.Info("management API: command done", "reason", c.Reason, "image", c.ImageID)
	resp := commandResponse{Status: "ok", Command: c}
	if c.Name == event.CmdWorkersDebug {
		resp.Workers = s.opts.Scheduler.Workers()
	}
	writeJSON(w, http.StatusOK, resp)
}

// statusOf maps a command's error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, scheduler.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, scheduler.ErrNotManaged):
		return http.StatusNotFound
	case errors.Is(err, scheduler.ErrStopped):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// Command options, by the names the path or the query may give them
// (--reason/<text>, --reason=<text>, ?reason=<text>).
var (
	reasonOnly = map[string]string{"reason": "reason"}
	withImage  = map[string]string{"reason": "reason", "image": "image", "image_uuid": "image",
		"resource_image_uuid": "image", "router_image_uuid": "image"}
)

// commandArgs parses a command's options: the path segments after the
// first n (as the original passed them to its CLI: --name/value or
// --name=value) and the query. Anything else is an error.
func commandArgs(r *http.Request, n int, allowed map[string]string) (map[string]string, error) {
	out := map[string]string{}
	set := func(name, value string) error {
		key, ok := allowed[name]
		if !ok {
			return fmt.Errorf("unknown option %q", name)
		}
		if _, dup := out[key]; dup {
			return fmt.Errorf("option %q given twice", name)
		}
		out[key] = value
		return nil
	}
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	if len(segs) < n {
		return nil, errors.New("path too short")
	}
	segs = segs[n:]
	for i := 0; i < len(segs); i++ {
		seg, err := url.PathUnescape(segs[i])
		if err != nil {
			return nil, fmt.Errorf("path segment %q: %w", segs[i], err)
		}
		name, ok := strings.CutPrefix(seg, "--")
		if !ok || name == "" {
			return nil, fmt.Errorf("unexpected argument %q", seg)
		}
		name, value, inline := strings.Cut(name, "=")
		if !inline {
			if i+1 >= len(segs) {
				return nil, fmt.Errorf("option --%s needs a value", name)
			}
			i++
			if value, err = url.PathUnescape(segs[i]); err != nil {
				return nil, fmt.Errorf("path segment %q: %w", segs[i], err)
			}
		}
		if err := set(strings.ReplaceAll(name, "-", "_"), value); err != nil {
			return nil, err
		}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	for name, values := range q {
		for _, v := range values {
			if err := set(name, v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (s *Server) globalDebug(w http.ResponseWriter, r *http.Request) {
	args, err := commandArgs(r, 3, reasonOnly)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	c := event.CommandArgs{Name: event.CmdGlobalDebug, Reason: args["reason"]}
	switch r.PathValue("mode") {
	case "enable":
		c.Enabled = true
	case "disable":
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("global debug: %q is neither enable nor disable", r.PathValue("mode")))
		return
	}
	s.run(w, r, c)
}

func (s *Server) tenantCommand(w http.ResponseWriter, r *http.Request) {
	names := map[string]event.CommandName{"debug": event.CmdTenantDebug, "manage": event.CmdTenantManage}
	name, ok := names[r.PathValue("cmd")]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no tenant command %q (debug, manage)", r.PathValue("cmd")))
		return
	}
	args, err := commandArgs(r, 3, reasonOnly)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.run(w, r, event.CommandArgs{Name: name, TenantID: r.PathValue("id"), Reason: args["reason"]})
}

func (s *Server) resourceCommand(w http.ResponseWriter, r *http.Request) {
	s.resourceLike(w, r, map[string]event.CommandName{
		"debug": event.CmdResourceDebug, "manage": event.CmdResourceManage,
		"update": event.CmdResourceUpdate, "rebuild": event.CmdResourceRebuild,
	}, false)
}

func (s *Server) routerCommand(w http.ResponseWriter, r *http.Request) {
	s.resourceLike(w, r, map[string]event.CommandName{
		"debug": event.CmdRouterDebug, "manage": event.CmdRouterManage,
		"update": event.CmdRouterUpdate, "rebuild": event.CmdRouterRebuild,
	}, true)
}

// resourceLike runs a resource or (deprecated) router command.
func (s *Server) resourceLike(w http.ResponseWriter, r *http.Request, names map[string]event.CommandName, router bool) {
	cmd := r.PathValue("cmd")
	name, ok := names[cmd]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("no command %q (debug, manage, update, rebuild)", cmd))
		return
	}
	allowed := reasonOnly
	if cmd == "rebuild" {
		allowed = withImage
	}
	args, err := commandArgs(r, 3, allowed)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id := r.PathValue("id")
	if !event.IsWildcard(id) {
		id = strings.ToLower(id) // as the original's CLI did
	}
	c := event.CommandArgs{Name: name, ResourceID: id, Reason: args["reason"], ImageID: args["image"]}
	if router && (cmd == "update" || cmd == "rebuild") && !event.IsWildcard(id) && s.opts.RouterTenant != nil {
		ctx, cancel := context.WithTimeout(r.Context(), s.opts.CommandTimeout)
		tenant, err := s.opts.RouterTenant(ctx, id)
		cancel()
		switch {
		case errors.Is(err, provider.ErrNotFound):
			writeError(w, http.StatusNotFound, fmt.Errorf("router %s: %w", id, err))
			return
		case err != nil:
			writeError(w, http.StatusBadGateway, fmt.Errorf("looking up router %s: %w", id, err))
			return
		}
		c.TenantID = tenant
	}
	s.run(w, r, c)
}

// ResourceView is a managed resource as the API shows it.
type ResourceView struct {
	worker.ResourceStatus
	// Stale is set when the resource missed health polls: it drops them
	// (ERROR), is left alone (debug mode), or its worker is behind.
	Stale bool `json:"stale"`
	// Status is the resource's status as published in the network API
	// (a router's ACTIVE, BUILD, DOWN or ERROR), for its instance state.
	Status string `json:"status,omitempty"`
}

// stale says whether a resource missed polls, as of now.
func (s *Server) stale(rs worker.ResourceStatus, now time.Time) bool {
	if s.opts.StaleAfter == nil || rs.LastSeen.IsZero() {
		return false
	}
	return now.Sub(rs.LastSeen) > s.opts.StaleAfter()
}

func (s *Server) view(rs worker.ResourceStatus, now time.Time) ResourceView {
	v := ResourceView{ResourceStatus: rs, Stale: s.stale(rs, now)}
	if s.opts.Status != nil {
		if st, ok := s.opts.Status(rs.Resource, rs.Instance); ok {
			v.Status = st
		}
	}
	return v
}

// filters of GET /resources.
var filters = []string{"state", "machine_state", "tenant", "driver", "debug", "stale"}

func (s *Server) listResources(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("query: %w", err))
		return
	}
	keep := []func(ResourceView) bool{}
	for name, values := range q {
		if !slices.Contains(filters, name) {
			writeError(w, http.StatusBadRequest, fmt.Errorf("unknown filter %q (%s)", name, strings.Join(filters, ", ")))
			return
		}
		v := values[len(values)-1]
		var f func(ResourceView) bool
		switch name {
		case "state":
			st, ok := parseInstanceState(v)
			if !ok {
				writeError(w, http.StatusBadRequest, fmt.Errorf("state %q: not an instance state", v))
				return
			}
			f = func(rv ResourceView) bool { return rv.Instance == st }
		case "machine_state":
			st, ok := parseMachineState(v)
			if !ok {
				writeError(w, http.StatusBadRequest, fmt.Errorf("machine_state %q: not a state of the machine", v))
				return
			}
			f = func(rv ResourceView) bool { return rv.State == st }
		case "tenant":
			f = func(rv ResourceView) bool { return rv.Resource.TenantID == v }
		case "driver":
			f = func(rv ResourceView) bool { return rv.Resource.Driver == v }
		case "debug", "stale":
			b, err := strconv.ParseBool(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("%s %q: not a boolean", name, v))
				return
			}
			if name == "debug" {
				f = func(rv ResourceView) bool { return rv.Debug == b }
			} else {
				f = func(rv ResourceView) bool { return rv.Stale == b }
			}
		}
		keep = append(keep, f)
	}
	now := time.Now()
	out := []ResourceView{}
	for _, rs := range s.opts.Scheduler.Resources() {
		rv := s.view(rs, now)
		if !slices.ContainsFunc(keep, func(f func(ResourceView) bool) bool { return !f(rv) }) {
			out = append(out, rv)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": out, "count": len(out)})
}

func parseInstanceState(s string) (state.InstanceState, bool) {
	for st := state.Down; st <= state.Degraded; st++ {
		if strings.EqualFold(st.String(), s) {
			return st, true
		}
	}
	return 0, false
}

func parseMachineState(s string) (state.Name, bool) {
	for st := state.CalcAction; st <= state.Exit; st++ {
		if strings.EqualFold(st.String(), s) {
			return st, true
		}
	}
	return 0, false
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rs, ok := s.opts.Scheduler.Resource(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: %s", scheduler.ErrNotManaged, id))
		return
	}
	writeJSON(w, http.StatusOK, s.view(rs, time.Now()))
}

// workersView is GET /workers.
type workersView struct {
	Workers    []worker.WorkerStatus `json:"workers"`
	InputQueue int                   `json:"input_queue"`
	RunQueue   int                   `json:"run_queue"`
	Resources  int                   `json:"resources"`
	Debug      store.DebugModes      `json:"debug"`
}

func (s *Server) getWorkers(w http.ResponseWriter, r *http.Request) {
	v := workersView{Workers: s.opts.Scheduler.Workers(), Debug: s.opts.Scheduler.DebugModes()}
	for _, ws := range v.Workers {
		v.InputQueue += ws.InputQueue
		v.RunQueue += ws.RunQueue
		v.Resources += ws.Resources
	}
	writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error": "encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// errorResponse is the body of every error.
type errorResponse struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, errorResponse{Error: err.Error(), Status: code})
}
