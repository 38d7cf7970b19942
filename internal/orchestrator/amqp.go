package orchestrator

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/astara-go/astara/internal/config"
	"github.com/astara-go/astara/internal/event"
	"github.com/astara-go/astara/internal/intake"
)

// Normalizer returns the mapping of notifications to events the
// configuration asks for: the router driver, with the VPNaaS events when
// [router] ipsec_vpn is set.
func Normalizer(cfg *config.Config) *event.Normalizer {
	return event.NewNormalizer(event.RouterDriver{IPsecVPN: cfg.Router.IPsecVPN})
}

// NewAMQPSource returns the source of Neutron's notifications the
// configuration describes: the broker of transport_url, the exchange
// neutron_control_exchange (declared with Neutron's flags, [oslo_messaging_rabbit]
// amqp_durable_queues and amqp_auto_delete), and for each notification
// topic a durable queue astara.<topic>.<host> bound to <topic>.info.
func NewAMQPSource(cfg *config.Config, log *slog.Logger) (*intake.AMQPSource, error) {
	urls, err := cfg.BrokerURLs()
	if err != nil {
		return nil, fmt.Errorf("[DEFAULT] transport_url: %w", err)
	}
	if len(urls) == 0 {
		return nil, errors.New("no notification broker: set [DEFAULT] transport_url (rabbit://user:pass@host:5672/)")
	}
	var bindings []intake.Binding
	for _, topic := range cfg.Notifications.Topics {
		bindings = append(bindings, intake.Binding{
			Exchange: cfg.NeutronControlExchange, ExchangeType: "topic",
			ExchangeDurable: cfg.Rabbit.AMQPDurableQueues, ExchangeAutoDelete: cfg.Rabbit.AMQPAutoDelete,
			RoutingKey: topic + ".info",
			Queue:      "astara." + topic + "." + cfg.Host, QueueDurable: true,
		})
	}
	if len(bindings) == 0 {
		return nil, errors.New("[oslo_messaging_notifications] topics: no topic to consume")
	}
	amqpCfg := intake.AMQPConfig{URLs: urls, Host: cfg.Host, Bindings: bindings, Normalizer: Normalizer(cfg), Logger: log}
	if amqpCfg.TLS, err = cfg.BrokerTLS(); err != nil {
		return nil, err
	}
	src, err := intake.NewAMQPSource(amqpCfg)
	if err != nil {
		return nil, fmt.Errorf("notification source: %w", err)
	}
	return src, nil
}
