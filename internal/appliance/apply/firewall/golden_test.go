package firewall

// The golden rulesets. Their chain blocks are exactly what `nft list table`
// prints for the kernel state (TestKernelMatchesRuleset checks that), so they
// double as a reviewable statement of the firewall's semantics.
var golden = map[string]string{
	"full": `table inet astara {
	set internal_v4 {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/24,
			     10.1.0.0/24 }
	}

	map fip_dnat {
		type ipv4_addr : ipv4_addr
		size 16384
		elements = { 172.16.0.10 : 10.0.0.4,
			     172.16.0.11 : 10.0.0.5 }
	}

	map fip_snat {
		type ipv4_addr : ipv4_addr
		size 16384
		elements = { 10.0.0.4 : 172.16.0.10,
			     10.0.0.5 : 172.16.0.11 }
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		icmp type echo-request accept
		meta l4proto ipv6-icmp accept
		iifname "eth0" tcp dport 22 accept
		iifname "eth0" tcp dport 5000 accept
		iifname "eth1" udp dport 67 accept
		iifname "eth1" udp dport 547 accept
		iifname "eth1" udp dport 53 accept
		iifname "eth1" tcp dport 53 accept
		iifname "eth1" ip daddr 10.0.0.1 tcp dport 9601 accept
		iifname "eth3" ip daddr 10.1.0.1 tcp dport 9603 accept
		iifname "eth4" udp dport 67 accept
		iifname "eth4" udp dport 53 accept
		iifname "eth4" tcp dport 53 accept
		iifname "eth2" ip saddr 172.16.0.3 tcp dport 179 accept
		iifname "eth2" ip6 saddr 2001:db8::1 tcp dport 179 accept
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
	}

	chain mark_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname "eth2" meta nfproto ipv4 meta mark set 0x0000acda
		ip daddr @internal_v4 meta mark set 0x0000acda
	}

	chain mark_output {
		type filter hook output priority raw; policy accept;
		meta nfproto ipv4 meta mark set 0x0000acda
	}

	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth1" ip daddr 169.254.169.254 tcp dport 80 dnat ip to 10.0.0.1:9601
		iifname "eth3" ip daddr 169.254.169.254 tcp dport 80 dnat ip to 10.1.0.1:9603
		iifname "eth2" dnat ip to ip daddr map @fip_dnat
		iifname "eth1" dnat ip to ip daddr map @fip_dnat
		iifname "eth3" dnat ip to ip daddr map @fip_dnat
	}

	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark 0x0000acda return
		oifname "eth0" return
		ip saddr @internal_v4 snat ip to ip saddr map @fip_snat
		ip saddr @internal_v4 snat ip to 172.16.0.2
	}
}
`,
	"empty": `table inet astara {
	set internal_v4 {
		type ipv4_addr
		flags interval
	}

	map fip_dnat {
		type ipv4_addr : ipv4_addr
		size 16384
	}

	map fip_snat {
		type ipv4_addr : ipv4_addr
		size 16384
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		icmp type echo-request accept
		meta l4proto ipv6-icmp accept
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
	}

	chain mark_prerouting {
		type filter hook prerouting priority raw; policy accept;
	}

	chain mark_output {
		type filter hook output priority raw; policy accept;
	}

	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}

	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
`,
	"no_external": `table inet astara {
	set internal_v4 {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0/24 }
	}

	map fip_dnat {
		type ipv4_addr : ipv4_addr
		size 16384
	}

	map fip_snat {
		type ipv4_addr : ipv4_addr
		size 16384
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		icmp type echo-request accept
		meta l4proto ipv6-icmp accept
		iifname "eth0" tcp dport 22 accept
		iifname "eth1" udp dport 67 accept
		iifname "eth1" ip daddr 10.0.0.1 tcp dport 9601 accept
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
	}

	chain mark_prerouting {
		type filter hook prerouting priority raw; policy accept;
	}

	chain mark_output {
		type filter hook output priority raw; policy accept;
	}

	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth1" ip daddr 169.254.169.254 tcp dport 80 dnat ip to 10.0.0.1:9601
	}

	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
`,
	"isolated_only": `table inet astara {
	set internal_v4 {
		type ipv4_addr
		flags interval
	}

	map fip_dnat {
		type ipv4_addr : ipv4_addr
		size 16384
	}

	map fip_snat {
		type ipv4_addr : ipv4_addr
		size 16384
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		icmp type echo-request accept
		meta l4proto ipv6-icmp accept
		iifname "eth0" tcp dport 5000 accept
		iifname "eth9" tcp dport 5000 accept
		iifname "eth1" udp dport 547 accept
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
	}

	chain mark_prerouting {
		type filter hook prerouting priority raw; policy accept;
	}

	chain mark_output {
		type filter hook output priority raw; policy accept;
	}

	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}

	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
`,
	"external_no_snat": `table inet astara {
	set internal_v4 {
		type ipv4_addr
		flags interval
		elements = { 10.0.0.0-10.0.2.255,
			     172.20.0.0/16,
			     192.168.1.0/24,
			     255.255.255.0/24 }
	}

	map fip_dnat {
		type ipv4_addr : ipv4_addr
		size 16384
		elements = { 203.0.113.5 : 10.0.0.9 }
	}

	map fip_snat {
		type ipv4_addr : ipv4_addr
		size 16384
		elements = { 10.0.0.9 : 203.0.113.5 }
	}

	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept
		ct state established,related accept
		icmp type echo-request accept
		meta l4proto ipv6-icmp accept
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
	}

	chain mark_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname "ens5" meta nfproto ipv4 meta mark set 0x0000acda
		ip daddr @internal_v4 meta mark set 0x0000acda
	}

	chain mark_output {
		type filter hook output priority raw; policy accept;
		meta nfproto ipv4 meta mark set 0x0000acda
	}

	chain nat_prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "ens5" dnat ip to ip daddr map @fip_dnat
		iifname "ens6" dnat ip to ip daddr map @fip_dnat
	}

	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark 0x0000acda return
		ip saddr @internal_v4 snat ip to ip saddr map @fip_snat
	}
}
`,
}
