// Package api serves the appliance's REST API (v1, compatible with the
// original astara-appliance, minus its bugs): status, firewall rules,
// interfaces, and the configuration document.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/astara-go/astara/internal/appliance/model"
)

// Interface is one data interface as the API reports it.
type Interface struct {
	IfName      string         `json:"ifname"`
	LLAddr      string         `json:"lladdr"`
	Addresses   []netip.Prefix `json:"addresses"`
	MTU         int            `json:"mtu"`
	State       string         `json:"state"` // "up" or "down"
	Description string         `json:"description"`
	Groups      []string       `json:"groups"`
	Media       *string        `json:"media"`
}

// Reachability is the result of the external connectivity probe.
type Reachability struct {
	V4 bool `json:"v4"`
	V6 bool `json:"v6"`
}

// Backend is what the API drives.
type Backend interface {
	// Apply makes the appliance match doc, decoded from body. Errors of type
	// *model.StaleError, *model.ValidationError and *model.UnsupportedError
	// are the client's.
	Apply(ctx context.Context, doc *model.Document, body []byte) error
	// Config returns the applied document (nil before the first) and its time.
	Config() (*model.Document, time.Time)
	Interfaces(ctx context.Context) ([]Interface, error)
	FirewallRules(ctx context.Context, fromKernel bool) (string, error)
	Reachability(ctx context.Context) Reachability
}

// Info identifies the running agent.
type Info struct {
	Version  string
	Hostname func() string
}

// Server is the HTTP handler of the API.
type Server struct {
	backend Backend
	info    Info
	log     *slog.Logger
	started time.Time
	mux     *http.ServeMux
}

// New returns the API handler.
func New(b Backend, info Info, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{backend: b, info: info, log: log, started: time.Now(), mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	handle := func(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }
	handle("GET /v1/base/{$}", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "Astara appliance API service is active")
	})
	handle("GET /v1/base", redirectSlash)
	handle("GET /v1/status/{$}", s.status)
	handle("GET /v1/status", redirectSlash)
	handle("GET /v1/firewall/rules", s.rules)
	handle("GET /v1/system/interfaces", s.interfaces)
	handle("GET /v1/system/interface/{ifname}", s.iface)
	handle("GET /v1/system/config", s.getConfig)
	handle("PUT /v1/system/config", s.putConfig)
	handle("GET /v1/info", s.getInfo)
	// Known paths answer other methods with a JSON 405, unknown ones with a JSON 404.
	for path, allow := range map[string]string{
		"/v1/base/{$}": "GET", "/v1/status/{$}": "GET", "/v1/firewall/rules": "GET",
		"/v1/system/interfaces": "GET", "/v1/system/interface/{ifname}": "GET",
		"/v1/system/config": "GET, PUT", "/v1/info": "GET",
	} {
		handle(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path, nil)
		})
	}
	handle("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such resource: "+r.URL.Path, nil)
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func redirectSlash(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.backend.Reachability(r.Context()))
}

func (s *Server) rules(w http.ResponseWriter, r *http.Request) {
	text, err := s.backend.FirewallRules(r.Context(), r.URL.Query().Get("source") == "kernel")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeText(w, http.StatusOK, text)
}

func (s *Server) interfaces(w http.ResponseWriter, r *http.Request) {
	ifs, err := s.backend.Interfaces(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ifs == nil {
		ifs = []Interface{}
	}
	writeJSON(w, http.StatusOK, map[string][]Interface{"interfaces": ifs})
}

func (s *Server) iface(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("ifname")
	ifs, err := s.backend.Interfaces(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, i := range ifs {
		if i.IfName == name {
			writeJSON(w, http.StatusOK, map[string]Interface{"interface": i})
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no interface %q", name), nil)
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	doc, _ := s.backend.Config()
	writeJSON(w, http.StatusOK, map[string]*model.Document{"configuration": doc})
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type must be application/json, not %q", r.Header.Get("Content-Type")), nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, model.MaxDocumentSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("document larger than %d bytes", tooBig.Limit), nil)
			return
		}
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error(), nil)
		return
	}
	doc, err := model.Decode(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.backend.Apply(r.Context(), doc, body); err != nil {
		s.fail(w, r, err)
		return
	}
	applied, _ := s.backend.Config()
	writeJSON(w, http.StatusOK, map[string]*model.Document{"configuration": applied})
}

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request) {
	doc, at := s.backend.Config()
	out := struct {
		Version       string     `json:"version"`
		Hostname      string     `json:"hostname"`
		UptimeSeconds float64    `json:"uptime_seconds"`
		Generation    uint64     `json:"generation"`
		Configured    bool       `json:"configured"`
		AppliedAt     *time.Time `json:"applied_at,omitempty"`
		ConfigHost    string     `json:"config_hostname,omitempty"`
	}{
		Version:       s.info.Version,
		UptimeSeconds: time.Since(s.started).Round(time.Millisecond).Seconds(),
		Configured:    doc != nil,
	}
	if s.info.Hostname != nil {
		out.Hostname = s.info.Hostname()
	}
	if doc != nil {
		out.Generation = doc.Generation
		out.ConfigHost = doc.Hostname
		out.AppliedAt = &at
		if out.Hostname == "" {
			out.Hostname = doc.Hostname
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// fail maps an error to its status: the client's mistakes to 4xx with the
// offending fields, the appliance's to 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		verr  *model.ValidationError
		uerr  *model.UnsupportedError
		stale *model.StaleError
	)
	switch {
	case errors.As(err, &verr):
		writeError(w, http.StatusUnprocessableEntity, "The config failed to validate.", verr.Errors)
	case errors.As(err, &uerr):
		writeError(w, http.StatusBadRequest, uerr.Error(), nil)
	case errors.As(err, &stale):
		writeError(w, http.StatusConflict, stale.Error(), nil)
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "request canceled", nil)
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
	}
}

type errorBody struct {
	Error struct {
		Code    int           `json:"code"`
		Message string        `json:"message"`
		Fields  []fieldDetail `json:"fields,omitempty"`
	} `json:"error"`
}

type fieldDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, code int, msg string, fields []model.FieldError) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	for _, f := range fields {
		b.Error.Fields = append(b.Error.Fields, fieldDetail{Field: f.Field, Message: f.Msg})
		b.Error.Message += "\n" + f.Error()
	}
	writeJSON(w, code, b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = http.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"encoding the response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

func writeText(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, text)
}
