// Package amqpnotify publishes the embedded network API's notifications
// to RabbitMQ as Neutron's oslo.messaging notifier does: oslo v2
// envelopes, JSON, persistent, on the topic exchange "neutron" (not
// durable, not auto-deleted: Neutron's defaults) with routing key
// "notifications.info". A Publisher is a netapi.Notifier.
package amqpnotify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/astara-go/astara/internal/event"
)

// Neutron's notification exchange and routing key.
const (
	DefaultExchange   = "neutron"
	DefaultRoutingKey = "notifications.info"
)

// Config configures a Publisher. Zero fields take the defaults noted.
type Config struct {
	// URL is the broker: amqp[s]://user:pass@host:port/vhost.
	URL string
	// Exchange is the topic exchange (default DefaultExchange). It is
	// declared with Neutron's flags (durable = ExchangeDurable,
	// auto-delete false): a declaration with other flags than the
	// existing exchange's is refused by the broker.
	Exchange        string
	ExchangeDurable bool
	// RoutingKey is the messages' routing key (default DefaultRoutingKey).
	RoutingKey string
	// Queue, if set, is declared (not durable) and bound to the exchange
	// with the routing key, as oslo.messaging's notifier declares
	// "notifications.info", so that nothing is lost while no consumer has
	// bound its own queue. Nobody consumes it: leave it empty unless
	// something reads it.
	Queue string
	// Mandatory makes a message no queue takes a failure (and so retried
	// by the server) rather than dropped by the broker, as it is for
	// Neutron: set it when a consumer is expected (e.g. the orchestrator's
	// own AMQP source, whose binding to the non-durable exchange is gone
	// after a broker restart until it reconnects). Without a consumer,
	// every notification would wait.
	Mandatory bool
	// TLS configures amqps:// connections (default: system roots).
	TLS *tls.Config
	// DialTimeout bounds connecting and the AMQP handshake (default 30 s).
	DialTimeout time.Duration
	// Logger receives the logs (default: none).
	Logger *slog.Logger
}

// Publisher publishes notifications with publisher confirms: Notify
// returns nil only once the broker took the message. It connects on first
// use and again after a failure (the caller retries the notification).
// It is safe for concurrent use.
type Publisher struct {
	cfg Config

	mu      sync.Mutex
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	closed  bool
}

// New checks cfg and returns a Publisher; it does not connect yet.
func New(cfg Config) (*Publisher, error) {
	if cfg.URL == "" {
		return nil, errors.New("amqpnotify: no broker URL")
	}
	if _, err := amqp.ParseURI(cfg.URL); err != nil {
		return nil, fmt.Errorf("amqpnotify: broker URL %s: %w", redact(cfg.URL), err)
	}
	if cfg.Exchange == "" {
		cfg.Exchange = DefaultExchange
	}
	if cfg.RoutingKey == "" {
		cfg.RoutingKey = DefaultRoutingKey
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{cfg: cfg}, nil
}

// Body returns the AMQP body of n: an oslo v2 envelope around the message
// as it was built (n.Raw, with every context field), or, for a
// notification built field by field, event.Encode's.
func Body(n event.Notification) ([]byte, error) {
	if n.Raw == nil {
		return event.Encode(n)
	}
	msg, err := jsonString(n.Raw)
	if err != nil {
		return nil, err
	}
	return []byte(`{"oslo.version": "2.0", "oslo.message": ` + msg + `}`), nil
}

// Notify publishes n and waits for the broker's confirmation, or until
// ctx is done. On failure the connection is dropped; the next call
// connects again.
func (p *Publisher) Notify(ctx context.Context, n event.Notification) error {
	body, err := Body(n)
	if err != nil {
		return fmt.Errorf("amqpnotify: %s: %w", n.EventType, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("amqpnotify: publisher closed")
	}
	if err := p.connect(ctx); err != nil {
		return fmt.Errorf("amqpnotify: %w", err)
	}
	msg := amqp.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Persistent,
		Priority:        0,
		Headers:         amqp.Table{},
		Body:            body,
	}
	dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.Exchange, p.cfg.RoutingKey, p.cfg.Mandatory, false, msg)
	if err != nil {
		p.drop()
		return fmt.Errorf("amqpnotify: publish %s: %w", n.EventType, err)
	}
	ok, err := dc.WaitContext(ctx)
	switch {
	case err != nil:
		p.drop()
		return fmt.Errorf("amqpnotify: confirm %s: %w", n.EventType, err)
	case !ok:
		return fmt.Errorf("amqpnotify: the broker refused %s (nack)", n.EventType)
	}
	// The broker returns an unroutable mandatory message before its ack,
	// and returns are queued (buffered) in frame order: it is here now.
	select {
	case r := <-p.returns:
		return fmt.Errorf("amqpnotify: no queue takes %s on exchange %s with key %s (%s)", n.EventType, r.Exchange, r.RoutingKey, r.ReplyText)
	default:
	}
	return nil
}

// connect opens the connection and the confirming channel, and declares
// the exchange (and queue), unless they are open.
func (p *Publisher) connect(ctx context.Context) error {
	if p.ch != nil && !p.ch.IsClosed() {
		return nil
	}
	p.drop()
	cfg := amqp.Config{
		Heartbeat:       10 * time.Second,
		TLSClientConfig: p.cfg.TLS,
		Locale:          "en_US",
		Properties:      amqp.Table{"connection_name": "astara netapi notifier"},
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: p.cfg.DialTimeout}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bound the handshake; amqp091 clears the deadline after it.
			return conn, conn.SetDeadline(time.Now().Add(p.cfg.DialTimeout))
		},
	}
	conn, err := amqp.DialConfig(p.cfg.URL, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(p.cfg.URL), err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err == nil {
		err = ch.ExchangeDeclare(p.cfg.Exchange, "topic", p.cfg.ExchangeDurable, false, false, false, nil)
	}
	if err == nil && p.cfg.Queue != "" {
		if _, err = ch.QueueDeclare(p.cfg.Queue, false, false, false, false, nil); err == nil {
			err = ch.QueueBind(p.cfg.Queue, p.cfg.RoutingKey, p.cfg.Exchange, false, nil)
		}
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("set up %s: %w", redact(p.cfg.URL), err)
	}
	p.returns = ch.NotifyReturn(make(chan amqp.Return, 16))
	p.conn, p.ch = conn, ch
	p.cfg.Logger.Info("publishing notifications", "broker", redact(p.cfg.URL), "exchange", p.cfg.Exchange, "routing_key", p.cfg.RoutingKey)
	return nil
}

// drop closes the connection, if any.
func (p *Publisher) drop() {
	if p.conn != nil {
		if err := p.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			p.cfg.Logger.Debug("closing the AMQP connection", "error", err)
		}
	}
	p.conn, p.ch = nil, nil
}

// Close closes the connection; Notify fails afterwards.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var err error
	if p.conn != nil {
		if err = p.conn.Close(); errors.Is(err, amqp.ErrClosed) {
			err = nil
		}
	}
	p.conn, p.ch = nil, nil
	if err != nil {
		return fmt.Errorf("amqpnotify: close: %w", err)
	}
	return nil
}

// redact hides the password of a broker URL.
func redact(u string) string {
	p, err := neturl.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return p.Redacted()
}
