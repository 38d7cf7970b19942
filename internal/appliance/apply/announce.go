package apply

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/astara-go/astara/internal/appliance/apply/netif"
)

// announceRepeat is how many times each announcement is sent, a second
// apart: one frame may be lost, and a switch may still be learning.
const announceRepeat = 2

// announcer sends gratuitous ARPs in the background, so that an apply does
// not wait for thousands of frames and a lost frame fails nothing.
type announcer struct {
	log    *slog.Logger
	ch     chan []netif.LocalAddr
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newAnnouncer(log *slog.Logger) *announcer {
	ctx, cancel := context.WithCancel(context.Background())
	a := &announcer{log: log, ch: make(chan []netif.LocalAddr, 64), cancel: cancel}
	a.wg.Go(func() { a.run(ctx) })
	return a
}

// announce queues addresses; it never blocks (a full queue drops the batch,
// with a warning: announcements only speed up what ARP does anyway).
func (a *announcer) announce(addrs []netif.LocalAddr) {
	if len(addrs) == 0 {
		return
	}
	select {
	case a.ch <- addrs:
	default:
		a.log.Warn("gratuitous ARP queue full; batch dropped", "addresses", len(addrs))
	}
}

func (a *announcer) close() {
	a.cancel()
	a.wg.Wait()
}

func (a *announcer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-a.ch:
			byDev := map[string][]netip.Addr{}
			for _, l := range batch {
				if l.Addr.Is4() && l.Dev != "" {
					byDev[l.Dev] = append(byDev[l.Dev], l.Addr)
				}
			}
			for i := range announceRepeat {
				if i > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Second):
					}
				}
				for dev, addrs := range byDev {
					if err := netif.SendGratuitousARP(ctx, dev, addrs); err != nil {
						a.log.Warn("gratuitous ARP failed", "interface", dev, "err", err)
					}
				}
			}
		}
	}
}
