package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// BrokerURLs returns the AMQP URLs of the notification broker, one per
// host, from [oslo_messaging_notifications] transport_url, else [DEFAULT]
// transport_url, else the deprecated amqp_url; nil when none is set. An
// oslo.messaging URL (rabbit://user:pass@host1:5672,user:pass@host2/vhost)
// becomes amqp://user:pass@host1:5672/vhost, ... (amqps:// with
// [oslo_messaging_rabbit] ssl).
func (c *Config) BrokerURLs() ([]string, error) {
	raw := c.Notifications.TransportURL
	if raw == "" {
		raw = c.TransportURL
	}
	if raw == "" {
		raw = c.AMQPURL
	}
	if raw == "" {
		return nil, nil
	}
	return parseTransportURL(raw, c.Rabbit.SSL)
}

// BrokerTLS returns the TLS configuration of amqps:// broker connections:
// the CA certificates of [oslo_messaging_rabbit] ssl_ca_file, or nil (the
// system's roots) when there is none.
func (c *Config) BrokerTLS() (*tls.Config, error) {
	if !c.Rabbit.SSL || c.Rabbit.SSLCAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.Rabbit.SSLCAFile)
	if err != nil {
		return nil, fmt.Errorf("[oslo_messaging_rabbit] ssl_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("[oslo_messaging_rabbit] ssl_ca_file %s: no PEM certificate", c.Rabbit.SSLCAFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// parseTransportURL converts an oslo.messaging transport URL. The error
// never shows a password.
func parseTransportURL(raw string, ssl bool) ([]string, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("not a transport URL (rabbit://user:pass@host:port/vhost)")
	}
	switch scheme {
	case "rabbit", "amqp", "kombu":
	case "amqps":
		ssl = true
	default:
		return nil, fmt.Errorf("transport %q is not supported (rabbit only)", scheme)
	}
	rest, _, _ = strings.Cut(rest, "?") // driver options: not used
	hosts, vhost, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return nil, errors.New("no broker host")
	}
	vhost, err := url.PathUnescape(vhost)
	if err != nil {
		return nil, errors.New("bad virtual host")
	}
	outScheme, defPort := "amqp", "5672"
	if ssl {
		outScheme, defPort = "amqps", "5671"
	}
	var out []string
	for _, h := range strings.Split(hosts, ",") {
		var user *url.Userinfo
		if at := strings.LastIndex(h, "@"); at >= 0 {
			creds := h[:at]
			h = h[at+1:]
			name, pass, hasPass := strings.Cut(creds, ":")
			name, err1 := url.PathUnescape(name)
			pass, err2 := url.PathUnescape(pass)
			if err1 != nil || err2 != nil {
				return nil, errors.New("bad user or password encoding")
			}
			if hasPass {
				user = url.UserPassword(name, pass)
			} else {
				user = url.User(name)
			}
		}
		host, port := h, defPort
		if hh, pp, err := net.SplitHostPort(h); err == nil {
			host, port = hh, pp
		} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			host = h[1 : len(h)-1]
		}
		if host == "" {
			return nil, errors.New("empty broker host")
		}
		u := url.URL{Scheme: outScheme, User: user, Host: net.JoinHostPort(host, port), Path: "/" + vhost}
		if vhost == "" {
			u.Path = "/"
		}
		out = append(out, u.String())
	}
	return out, nil
}
