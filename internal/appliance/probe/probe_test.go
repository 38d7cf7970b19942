package probe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }

func TestPing(t *testing.T) {
	nstest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range []string{"127.0.0.1", "::1"} {
		if err := Ping(ctx, netip.MustParseAddr(a)); err != nil {
			t.Errorf("Ping(%s) = %v, want a reply", a, err)
		}
	}
	// Nothing routes in an empty namespace: the probe fails, quickly.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := Ping(short, netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Errorf("Ping(192.0.2.1) succeeded in an isolated namespace")
	}
	if err := Ping(ctx, netip.Addr{}); err == nil {
		t.Errorf("Ping(invalid) succeeded")
	}
}
