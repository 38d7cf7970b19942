package instance

import (
	"testing"

	"github.com/astara-go/astara/internal/testutil/appliancetest"
)

// TestMain runs the appliance agent when the integration test starts this
// binary as one; otherwise it runs the tests in a fresh network namespace
// (as root), which takes the management bridge and the veths with it when
// the tests end.
func TestMain(m *testing.M) { appliancetest.Main(m) }
