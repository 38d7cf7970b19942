// Package pki makes the certificates of mutual TLS between the
// orchestrator and its appliances: a CA, one server certificate that every
// appliance presents (for a name that clients check instead of the
// appliances' management addresses), and the orchestrator's client
// certificate. Keys are ECDSA P-256; files are PEM.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// DefaultServerName is the name in the appliances' certificate.
const DefaultServerName = "appliance.astara"

// Files are the paths of a PKI's files.
type Files struct {
	CA                    string // the CA certificate
	ServerCert, ServerKey string // the appliances' certificate and key
	ClientCert, ClientKey string // the orchestrator's certificate and key
	ServerName            string // the name ServerCert is for
	caKey                 string // the CA's key
}

// In returns the paths of the PKI in dir, for serverName.
func In(dir, serverName string) Files {
	p := func(name string) string { return filepath.Join(dir, name) }
	return Files{
		CA: p("ca.pem"), caKey: p("ca-key.pem"),
		ServerCert: p("appliance.pem"), ServerKey: p("appliance-key.pem"),
		ClientCert: p("orchestrator.pem"), ClientKey: p("orchestrator-key.pem"),
		ServerName: serverName,
	}
}

// AgentFlags are the astara-appliance flags that serve TLS with the
// server certificate and require a client certificate of the CA.
func (f Files) AgentFlags() []string {
	return []string{"-tls-cert", f.ServerCert, "-tls-key", f.ServerKey, "-tls-client-ca", f.CA}
}

// Ensure returns the PKI in dir (created 0700 if missing): the one already
// there when it is whole, valid for serverName and for at least a day
// more; otherwise a new one, valid for validity, made by Generate. made
// tells which.
func Ensure(dir, serverName string, validity time.Duration) (f Files, made bool, err error) {
	f = In(dir, serverName)
	if err := f.check(time.Now().Add(24 * time.Hour)); err == nil {
		return f, false, nil
	}
	f, err = Generate(dir, serverName, validity)
	return f, err == nil, err
}

// check verifies that the files are whole: both key pairs load, and both
// certificates chain to the CA until at least until.
func (f Files) check(until time.Time) error {
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("%s: no certificate", f.CA)
	}
	if _, err := os.Stat(f.caKey); err != nil {
		return err
	}
	for _, kp := range []struct {
		cert, key, name string
		usage           x509.ExtKeyUsage
	}{{f.ServerCert, f.ServerKey, f.ServerName, x509.ExtKeyUsageServerAuth}, {f.ClientCert, f.ClientKey, "", x509.ExtKeyUsageClientAuth}} {
		pair, err := tls.LoadX509KeyPair(kp.cert, kp.key)
		if err != nil {
			return err
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return err
		}
		opts := x509.VerifyOptions{Roots: pool, DNSName: kp.name, CurrentTime: until, KeyUsages: []x509.ExtKeyUsage{kp.usage}}
		if _, err := leaf.Verify(opts); err != nil {
			return fmt.Errorf("%s: %w", kp.cert, err)
		}
	}
	return nil
}

// Generate writes a new PKI in dir (created 0700 if missing), replacing
// what is there: a CA, a server certificate for serverName and a client
// certificate, valid from an hour ago for validity. Each file is written
// whole or not at all.
func Generate(dir, serverName string, validity time.Duration) (Files, error) {
	if serverName == "" {
		return Files{}, errors.New("pki: no server name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("pki: %w", err)
	}
	f := In(dir, serverName)
	notAfter := time.Now().Add(validity)
	caKey, caCert, caDER, err := issue("astara-ca", nil, nil, 0, notAfter)
	if err != nil {
		return Files{}, err
	}
	if err := writeKey(f.caKey, caKey); err != nil {
		return Files{}, err
	}
	if err := writePEM(f.CA, "CERTIFICATE", caDER); err != nil {
		return Files{}, err
	}
	for _, leaf := range []struct {
		name, cert, key string
		usage           x509.ExtKeyUsage
	}{{serverName, f.ServerCert, f.ServerKey, x509.ExtKeyUsageServerAuth}, {"astara-orchestrator", f.ClientCert, f.ClientKey, x509.ExtKeyUsageClientAuth}} {
		key, _, der, err := issue(leaf.name, caCert, caKey, leaf.usage, notAfter)
		if err != nil {
			return Files{}, err
		}
		if err := writeKey(leaf.key, key); err != nil {
			return Files{}, err
		}
		if err := writePEM(leaf.cert, "CERTIFICATE", der); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// issue makes a CA (parent nil) or a certificate for name signed by parent.
func issue(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage, notAfter time.Time) (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: key of %s: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: serial of %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: parent == nil,
	}
	signer, signKey := tmpl, key
	if parent != nil {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage, tmpl.DNSNames = []x509.ExtKeyUsage{usage}, []string{name}
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: certificate of %s: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: certificate of %s: %w", name, err)
	}
	return key, cert, der, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %s: %w", path, err)
	}
	return writePEM(path, "EC PRIVATE KEY", der)
}

// writePEM writes one PEM block to path (0600) through a temporary file
// renamed over it.
func writePEM(path, typ string, der []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	_, err = tmp.Write(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("pki: writing %s: %w", path, err)
	}
	return nil
}
