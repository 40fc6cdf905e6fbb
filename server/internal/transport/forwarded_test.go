package transport

import (
	"net/netip"
	"testing"
)

func TestClientOf(t *testing.T) {
	lb := TrustedProxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	peer := netip.MustParseAddrPort("10.1.2.3:5555")
	outsider := netip.MustParseAddrPort("198.51.100.7:4444")
	tests := []struct {
		name string
		tp   TrustedProxies
		peer netip.AddrPort
		xff  []string
		want string
	}{
		{name: "no trusted proxies: the header is ignored", peer: peer, xff: []string{"203.0.113.5"}, want: "10.1.2.3:5555"},
		{name: "an untrusted peer: ignored", tp: lb, peer: outsider, xff: []string{"203.0.113.5"}, want: "198.51.100.7:4444"},
		{name: "a trusted peer without the header", tp: lb, peer: peer, want: "10.1.2.3:5555"},
		{name: "one proxy", tp: lb, peer: peer, xff: []string{"203.0.113.5"}, want: "203.0.113.5:0"},
		{name: "a client's own entry left of the proxy's is not believed", tp: lb, peer: peer, xff: []string{"1.2.3.4, 203.0.113.5"}, want: "203.0.113.5:0"},
		{name: "two proxies, in two headers", tp: lb, peer: peer, xff: []string{"1.2.3.4, 203.0.113.5", "10.9.9.9"}, want: "203.0.113.5:0"},
		{name: "a garbled entry ends the walk", tp: lb, peer: peer, xff: []string{"203.0.113.5, junk, 10.9.9.9"}, want: "10.9.9.9:0"},
		{name: "all hops trusted: the leftmost", tp: lb, peer: peer, xff: []string{"10.7.7.7, 10.9.9.9"}, want: "10.7.7.7:0"},
		{name: "IPv6", tp: lb, peer: netip.MustParseAddrPort("[fd00::1]:80"), xff: []string{"2001:db8::5"}, want: "[2001:db8::5]:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tp.clientOf(tt.peer, tt.xff).String(); got != tt.want {
				t.Errorf("clientOf = %s, want %s", got, tt.want)
			}
		})
	}
}
