package appliancetest

import (
	"testing"
	"time"

	"github.com/astara-go/astara/internal/pki"
)

// ServerName is the name in the appliances' certificate: clients verify
// it instead of the management address.
const ServerName = pki.DefaultServerName

// PKI holds the files of a CA, the appliances' certificate (for
// ServerName) and the orchestrator's client certificate.
type PKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// NewPKI writes a fresh PKI in the test's temporary directory.
func NewPKI(t testing.TB) PKI {
	t.Helper()
	f, err := pki.Generate(t.TempDir(), ServerName, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return PKI{CA: f.CA, ServerCert: f.ServerCert, ServerKey: f.ServerKey, ClientCert: f.ClientCert, ClientKey: f.ClientKey}
}

// AgentFlags are the agent's flags to serve TLS and require a client
// certificate from this PKI.
func (p PKI) AgentFlags() []string {
	return []string{"-tls-cert", p.ServerCert, "-tls-key", p.ServerKey, "-tls-client-ca", p.CA}
}
