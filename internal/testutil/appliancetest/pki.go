package appliancetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// ServerName is the name in the appliances' certificate: clients verify
// it instead of the management address.
const ServerName = "appliance.astara"

// PKI holds the files of a CA, the appliances' certificate (for
// ServerName) and the orchestrator's client certificate.
type PKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// NewPKI writes a fresh PKI in the test's temporary directory.
func NewPKI(t testing.TB) PKI {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caDER := issue(t, "astara-ca", nil, nil, 0)
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	leaf := func(name string, usage x509.ExtKeyUsage) (string, string) {
		key, _, der := issue(t, name, caCert, caKey, usage)
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	p := PKI{CA: write("ca.pem", "CERTIFICATE", caDER)}
	p.ServerCert, p.ServerKey = leaf(ServerName, x509.ExtKeyUsageServerAuth)
	p.ClientCert, p.ClientKey = leaf("orchestrator", x509.ExtKeyUsageClientAuth)
	return p
}

// AgentFlags are the agent's flags to serve TLS and require a client
// certificate from this PKI.
func (p PKI) AgentFlags() []string {
	return []string{"-tls-cert", p.ServerCert, "-tls-key", p.ServerKey, "-tls-client-ca", p.CA}
}

// issue makes a CA (parent nil) or a certificate for name signed by parent.
func issue(t testing.TB, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: parent == nil,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		tmpl.ExtKeyUsage, tmpl.DNSNames = []x509.ExtKeyUsage{usage}, []string{name}
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}
