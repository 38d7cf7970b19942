package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type certKey struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newCert(t *testing.T, name string, parent *certKey, isCA bool, usage x509.ExtKeyUsage) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	if !isCA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &certKey{cert: cert, key: key, der: der}
}

func (c *certKey) write(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	kb, _ := x509.MarshalECPrivateKey(c.key)
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func (c *certKey) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.der}, PrivateKey: c.key}
}

// TestMutualTLS: with -tls-client-ca, only clients holding a certificate
// signed by that CA get an answer.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCert(t, "astara-ca", nil, true, 0)
	other := newCert(t, "other-ca", nil, true, 0)
	server := newCert(t, "appliance", ca, false, x509.ExtKeyUsageServerAuth)
	good := newCert(t, "orchestrator", ca, false, x509.ExtKeyUsageClientAuth)
	bad := newCert(t, "intruder", other, false, x509.ExtKeyUsageClientAuth)
	caPath, _ := ca.write(t, dir, "ca")
	certPath, keyPath := server.write(t, dir, "server")

	conf, err := tlsConfig(Config{TLSCert: certPath, TLSKey: keyPath, TLSClientCA: caPath})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	srv.TLS = conf
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	get := func(client *tls.Certificate) error {
		tc := &tls.Config{RootCAs: roots}
		if client != nil {
			tc.Certificates = []tls.Certificate{*client}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	g := good.tls()
	if err := get(&g); err != nil {
		t.Errorf("client with a certificate from the CA: %v", err)
	}
	if err := get(nil); err == nil {
		t.Errorf("client without a certificate got an answer")
	}
	b := bad.tls()
	if err := get(&b); err == nil {
		t.Errorf("client with a certificate from another CA got an answer")
	}

	if _, err := tlsConfig(Config{TLSCert: certPath, TLSKey: keyPath, TLSClientCA: certPath + ".missing"}); err == nil {
		t.Errorf("a missing client CA file was accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsConfig(Config{TLSCert: certPath, TLSKey: keyPath, TLSClientCA: filepath.Join(dir, "junk.pem")}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a client CA file without certificates: %v", err)
	}
}
