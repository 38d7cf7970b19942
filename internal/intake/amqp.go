package intake

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/astara-go/astara/internal/event"
)

// Binding is one queue the AMQP source declares, binds and consumes.
//
// The exchange is declared with the flags given here, and RabbitMQ refuses
// (406 PRECONDITION_FAILED, closing the channel) a declaration whose flags
// differ from those of the existing exchange. Whoever declares first wins,
// so the flags must be exactly the publisher's: for Neutron's notification
// exchange, durable = [oslo_messaging_rabbit]amqp_durable_queues (default
// false) and auto_delete = amqp_auto_delete (default false). Set
// ExchangePassive to only check that the exchange exists instead.
type Binding struct {
	Exchange     string
	ExchangeType string // "topic", "fanout", ...
	// ExchangeDurable and ExchangeAutoDelete must match the publisher's.
	ExchangeDurable    bool
	ExchangeAutoDelete bool
	// ExchangePassive declares passively: the exchange must exist (the
	// source retries until it does) and its flags are not checked.
	ExchangePassive bool
	RoutingKey      string
	Queue           string
	QueueDurable    bool
	QueueAutoDelete bool
}

// NotificationBinding is Neutron's notification stream as the original
// consumed it (a listener pool per host): exchange "neutron" (topic, not
// durable, not auto-deleted: Neutron's defaults), routing key
// "notifications.info", and a durable queue "astara.notifications.<host>",
// so every orchestrator host gets every notification and nothing is lost
// while it is down. A non-durable exchange does not survive a broker
// restart, and neither does the binding to it: until the source
// re-declares both after reconnecting, notifications reach only Neutron's
// own "notifications.info" queue. Neutron with amqp_durable_queues = true
// and ExchangeDurable set close that window; the periodic poll covers it.
func NotificationBinding(host string) Binding {
	return Binding{
		Exchange: "neutron", ExchangeType: "topic",
		RoutingKey: "notifications.info",
		Queue:      "astara.notifications." + host, QueueDurable: true,
	}
}

// L3AgentFanoutBinding is the l3_agent RPC fanout, on which Neutron casts
// router_deleted to L3 agents (and which the original consumed too). The
// exchange flags are oslo.messaging's for fanout exchanges (not durable,
// auto-deleted); the queue is transient like oslo's fanout queues. It is
// redundant with router.delete.end, so it is not consumed by default.
func L3AgentFanoutBinding(host string) Binding {
	return Binding{
		Exchange: "l3_agent_fanout", ExchangeType: "fanout", ExchangeAutoDelete: true,
		Queue: "astara.l3_agent_fanout." + host, QueueAutoDelete: true,
	}
}

// AMQPConfig configures an AMQPSource. Zero fields take the defaults noted.
type AMQPConfig struct {
	// URLs are the brokers, tried in turn: amqp[s]://user:pass@host:port/vhost.
	URLs []string
	// Host names this orchestrator ([DEFAULT]host); it is part of the
	// default queue name.
	Host string
	// Bindings are what to consume; default: NotificationBinding(Host).
	Bindings []Binding
	// Prefetch is how many unacknowledged messages the broker sends ahead
	// (default 100).
	Prefetch int
	// Reconnect paces reconnections (default 100 ms doubling to 30 s).
	Reconnect Backoff
	// Retry paces the retries of a message the sink failed (default
	// 50 ms doubling to 5 s).
	Retry Backoff
	// MaxRetries is how many times a message is retried before its event
	// is given up (DefaultMaxRetries if zero, no limit if negative).
	MaxRetries int
	// DedupSize is how many message ids are remembered (default
	// event.DefaultDedupSize).
	DedupSize int
	// Normalizer maps notifications (default: the router driver alone).
	Normalizer *event.Normalizer
	// Logger receives the logs (default: none).
	Logger *slog.Logger
	// TLS configures amqps:// connections (default: system roots).
	TLS *tls.Config
	// Heartbeat is the AMQP heartbeat (default 10 s).
	Heartbeat time.Duration
	// DialTimeout bounds connecting and the AMQP handshake (default 30 s).
	DialTimeout time.Duration
}

// AMQPSource consumes notifications from RabbitMQ with manual acks. A
// supervisor loop reconnects with backoff and jitter whenever the
// connection or channel closes (broker restart, network cut), declares the
// exchanges, queues and bindings again and resumes consuming. It does not
// use amqp091-go's experimental automatic recovery: delivery tags start
// again on a new channel, so acknowledgements must never outlive their
// channel, which this loop guarantees.
type AMQPSource struct {
	cfg     AMQPConfig
	p       *processor
	running atomic.Bool
}

var _ Source = (*AMQPSource)(nil)

// NewAMQPSource checks cfg and returns a source.
func NewAMQPSource(cfg AMQPConfig) (*AMQPSource, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("intake: AMQP: no broker URL")
	}
	for _, u := range cfg.URLs {
		if _, err := amqp.ParseURI(u); err != nil {
			return nil, fmt.Errorf("intake: AMQP URL %q: %w", redact(u), err)
		}
	}
	if len(cfg.Bindings) == 0 {
		if cfg.Host == "" {
			return nil, errors.New("intake: AMQP: no host to name the queue after")
		}
		cfg.Bindings = []Binding{NotificationBinding(cfg.Host)}
	}
	for i, b := range cfg.Bindings {
		if b.Exchange == "" || b.ExchangeType == "" || b.Queue == "" {
			return nil, fmt.Errorf("intake: AMQP binding %d: exchange, exchange type and queue are required", i)
		}
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 100
	}
	if cfg.Reconnect.Min <= 0 {
		cfg.Reconnect.Min = 100 * time.Millisecond
	}
	if cfg.Reconnect.Max < cfg.Reconnect.Min {
		cfg.Reconnect.Max = max(30*time.Second, cfg.Reconnect.Min)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Bindings = append([]Binding(nil), cfg.Bindings...)
	cfg.URLs = append([]string(nil), cfg.URLs...)
	return &AMQPSource{cfg: cfg, p: newProcessor(cfg.Normalizer, cfg.DedupSize, cfg.Logger, cfg.Retry, cfg.MaxRetries)}, nil
}

// Stats implements Source.
func (s *AMQPSource) Stats() Stats { return s.p.c.snapshot() }

// Run implements Source. It returns nil when ctx is done, and an error
// when the broker refuses a declaration as PRECONDITION_FAILED: the
// configured flags differ from the existing exchange's or queue's, which
// no retry fixes.
func (s *AMQPSource) Run(ctx context.Context, sink Sink) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	log := s.cfg.Logger
	attempt := 0
	for i := 0; ; i++ {
		url := s.cfg.URLs[i%len(s.cfg.URLs)]
		consumed, err := s.session(ctx, sink, url)
		if ctx.Err() != nil {
			return nil
		}
		if consumed {
			s.p.c.disconnects.Add(1)
			attempt = 0
		} else {
			s.p.c.connectErrors.Add(1)
		}
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
			return fmt.Errorf("intake: %s: %w (the exchange or queue exists with other flags: they must match the publisher's, see Binding)", redact(url), err)
		}
		d := s.cfg.Reconnect.Delay(attempt)
		attempt++
		log.LogAttrs(ctx, slog.LevelWarn, "AMQP session ended; reconnecting",
			slog.String("url", redact(url)), slog.Any("error", err), slog.Duration("backoff", d))
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// session connects, declares, consumes until the connection or channel
// closes or ctx is done. consumed reports whether it got to consuming.
func (s *AMQPSource) session(ctx context.Context, sink Sink, url string) (consumed bool, err error) {
	conn, err := s.dial(ctx, url)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	// Closing the connection is what interrupts a blocked call on ctx.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var (
		merged  = make(chan amqp.Delivery)
		stopped = make(chan struct{})
		wg      sync.WaitGroup
	)
	defer func() {
		// The forwarders below exit on stopped, or when closing the
		// connection closes their deliveries.
		close(stopped)
		conn.Close()
		wg.Wait()
	}()
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))

	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancelled := ch.NotifyCancel(make(chan string, len(s.cfg.Bindings)))
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return false, fmt.Errorf("set prefetch: %w", err)
	}
	queues := make([]string, 0, len(s.cfg.Bindings))
	for i, b := range s.cfg.Bindings {
		if err := declare(ch, b); err != nil {
			return false, err
		}
		tag := fmt.Sprintf("astara-%s-%d", s.cfg.Host, i)
		deliveries, err := ch.Consume(b.Queue, tag, false, false, false, false, nil)
		if err != nil {
			return false, fmt.Errorf("consume %s: %w", b.Queue, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range deliveries {
				select {
				case merged <- d:
				case <-stopped:
					return
				}
			}
		}()
		queues = append(queues, b.Queue)
	}
	s.p.c.connects.Add(1)
	s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "consuming notifications",
		slog.String("url", redact(url)), slog.Any("queues", queues), slog.Int("prefetch", s.cfg.Prefetch))
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case e := <-connClosed:
			return true, closeError("connection closed", e)
		case e := <-chClosed:
			return true, closeError("channel closed", e)
		case tag := <-cancelled:
			return true, fmt.Errorf("the broker cancelled consumer %s (queue deleted, or the broker shutting down)", tag)
		case d := <-merged:
			// A closed connection wins over deliveries still buffered:
			// their acks would go nowhere; the broker redelivers them.
			select {
			case e := <-connClosed:
				return true, closeError("connection closed", e)
			case e := <-chClosed:
				return true, closeError("channel closed", e)
			default:
			}
			s.deliver(ctx, sink, d)
		}
	}
}

func closeError(what string, e *amqp.Error) error {
	if e == nil {
		return errors.New(what)
	}
	return fmt.Errorf("%s: %w", what, e)
}

// declare declares b's exchange and queue and binds them.
func declare(ch *amqp.Channel, b Binding) error {
	var err error
	if b.ExchangePassive {
		err = ch.ExchangeDeclarePassive(b.Exchange, b.ExchangeType, b.ExchangeDurable, b.ExchangeAutoDelete, false, false, nil)
	} else {
		err = ch.ExchangeDeclare(b.Exchange, b.ExchangeType, b.ExchangeDurable, b.ExchangeAutoDelete, false, false, nil)
	}
	if err != nil {
		return fmt.Errorf("declare exchange %s (%s, durable=%t, auto_delete=%t, passive=%t): %w",
			b.Exchange, b.ExchangeType, b.ExchangeDurable, b.ExchangeAutoDelete, b.ExchangePassive, err)
	}
	if _, err := ch.QueueDeclare(b.Queue, b.QueueDurable, b.QueueAutoDelete, false, false, nil); err != nil {
		return fmt.Errorf("declare queue %s (durable=%t, auto_delete=%t): %w", b.Queue, b.QueueDurable, b.QueueAutoDelete, err)
	}
	if err := ch.QueueBind(b.Queue, b.RoutingKey, b.Exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s to %s with %q: %w", b.Queue, b.Exchange, b.RoutingKey, err)
	}
	return nil
}

// deliver handles one delivery and acks or nacks it.
func (s *AMQPSource) deliver(ctx context.Context, sink Sink, d amqp.Delivery) {
	if d.Redelivered {
		s.p.c.redelivered.Add(1)
	}
	v, wait := s.p.handle(ctx, sink, d.Body, nil)
	switch v {
	case done:
		if err := d.Ack(false); err != nil {
			s.p.c.ackErrors.Add(1)
			s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "ack lost; the broker will redeliver",
				slog.Uint64("delivery_tag", d.DeliveryTag), slog.Any("error", err))
			return
		}
		s.p.c.acked.Add(1)
	case retry:
		// Back off first: a requeued message comes straight back.
		if !sleep(ctx, wait) {
			return
		}
		if err := d.Nack(false, true); err != nil {
			s.p.c.ackErrors.Add(1)
			s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "nack lost; the broker will redeliver",
				slog.Uint64("delivery_tag", d.DeliveryTag), slog.Any("error", err))
			return
		}
		s.p.c.nacked.Add(1)
	case abandon:
		// Unacknowledged: the broker requeues it when the channel closes.
	}
}

// dial connects to url, honouring ctx during the TCP connect and the
// AMQP handshake.
func (s *AMQPSource) dial(ctx context.Context, url string) (*amqp.Connection, error) {
	var stop func() bool
	props := amqp.NewConnectionProperties()
	props["connection_name"] = "astara-orchestrator " + s.cfg.Host
	conn, err := amqp.DialConfig(url, amqp.Config{
		Heartbeat:       s.cfg.Heartbeat,
		Locale:          "en_US",
		TLSClientConfig: s.cfg.TLS,
		Properties:      props,
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: s.cfg.DialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The library clears this deadline once the handshake is done.
			if err := c.SetDeadline(time.Now().Add(s.cfg.DialTimeout)); err != nil {
				c.Close()
				return nil, err
			}
			stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
			return c, nil
		},
	})
	if stop != nil {
		stop()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", redact(url), err)
	}
	return conn, nil
}

// redact removes the password from an AMQP URL, for logs and errors.
func redact(url string) string {
	u, err := amqp.ParseURI(url)
	if err != nil {
		if i := strings.LastIndexByte(url, '@'); i >= 0 {
			return "amqp://…@" + url[i+1:]
		}
		return url
	}
	return fmt.Sprintf("%s://%s@%s/%s", u.Scheme, u.Username, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)), neturl.PathEscape(u.Vhost))
}
