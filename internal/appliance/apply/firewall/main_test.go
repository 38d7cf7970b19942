package firewall

import (
	"testing"

	"github.com/astara-go/astara/internal/testutil/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }
