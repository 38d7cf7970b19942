package agent

import (
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	c, err := ParseFlags([]string{"-mgmt-mac", "fa:16:3e:00:00:01", "-mgmt-address", "fdca::5/64",
		"-dns-upstream", "192.0.2.53, 2001:db8::53", "-probe-v4", "198.51.100.1", "-port", "5001"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 5001 || len(c.DNSUpstream) != 2 || c.ProbeV4 != netip.MustParseAddr("198.51.100.1") || c.SSHPort != 22 {
		t.Errorf("config %+v", c)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-port", "0"}, "-port: 0 is not a TCP port"},
		{[]string{"-port", "70000"}, "-port: 70000 is not a TCP port"},
		{[]string{"-probe-v4", "::1"}, `-probe-v4: "::1" is not an IPv4 address`},
		{[]string{"-probe-v6", "1.1.1.1"}, `-probe-v6: "1.1.1.1" is not an IPv6 address`},
		{[]string{"-dns-upstream", "x"}, `-dns-upstream: "x" is not an IP address`},
		{[]string{"-log-level", "loud"}, "-log-level"},
		{[]string{"-log-format", "xml"}, "-log-format"},
		{[]string{"-mgmt-mac", "fa:16:3e:00:00:01"}, "-mgmt-mac and -mgmt-address go together"},
		{[]string{"-mgmt-mac", "fa:16:3e:00:00:01", "-mgmt-address", "fdca::5/64", "-user-data", "u"}, "give the management interface once"},
		{[]string{"-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"-tls-client-ca", "ca.pem"}, "-tls-client-ca needs -tls-cert"},
		{[]string{"-listen", "nowhere"}, "-listen"},
		{[]string{"-state-dir", ""}, "-state-dir: required"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-no-such-flag"}, "flag provided but not defined"},
	} {
		if _, err := ParseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestListenAddr(t *testing.T) {
	for _, tc := range []struct {
		flag string
		mgmt string
		want string
	}{
		{"", "fdca::5", "[fdca::5]:5000"},
		{"", "10.0.0.5", "10.0.0.5:5000"},
		{"", "", "[::]:5000"},
		{"127.0.0.1", "fdca::5", "127.0.0.1:5000"},
		{"[::1]:6000", "", "[::1]:6000"},
		{"::1", "", "[::1]:5000"},
	} {
		var mgmt netip.Addr
		if tc.mgmt != "" {
			mgmt = netip.MustParseAddr(tc.mgmt)
		}
		got, err := listenAddr(tc.flag, 5000, mgmt)
		if err != nil || got != tc.want {
			t.Errorf("listenAddr(%q, %s) = %q, %v, want %q", tc.flag, tc.mgmt, got, err, tc.want)
		}
	}
}
