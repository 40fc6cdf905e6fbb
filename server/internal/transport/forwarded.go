package transport

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// TrustedProxies are the peers (load balancers, reverse proxies) whose
// X-Forwarded-For the broker believes: behind one, every client shares its
// address, and the per-address limits (failed logins, logins in progress,
// public queries) need the client's own. From any other peer the header is
// ignored, so a client cannot name an address of its choosing. Only
// X-Forwarded-For is read (what nginx, Envoy and the clouds' load balancers
// append to); Forwarded is not.
type TrustedProxies []netip.Prefix

func (tp TrustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientOf is the client's address: the peer's, unless the peer is a
// trusted proxy, then the rightmost address of X-Forwarded-For that is not
// a trusted proxy (each proxy appends the address it got the request from),
// or the leftmost when all are. A malformed entry ends the walk: what lies
// left of it cannot be believed.
func (tp TrustedProxies) clientOf(peerAddr netip.AddrPort, xff []string) netip.AddrPort {
	if len(tp) == 0 || len(xff) == 0 || !tp.trusts(peerAddr.Addr()) {
		return peerAddr
	}
	var hops []string
	for _, v := range xff {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peerAddr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client
		}
		client = netip.AddrPortFrom(a.Unmap(), 0)
		if !tp.trusts(a) {
			return client
		}
	}
	return client
}

// fromProxy replaces a REST request's peer, as withPeer set it, with the
// client a trusted proxy names.
func (tp TrustedProxies) fromProxy(remote string, h []string) net.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return nil
	}
	c := tp.clientOf(ap, h)
	if c == ap {
		return nil
	}
	return net.TCPAddrFromAddrPort(c)
}

// unaryClientAddr makes a gRPC call's peer the client a trusted proxy names
// in the x-forwarded-for metadata (Envoy's, say).
func (tp TrustedProxies) unaryClientAddr(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	return h(tp.withClient(ctx), req)
}

func (tp TrustedProxies) withClient(ctx context.Context) context.Context {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil || len(tp) == 0 {
		return ctx
	}
	ap, err := netip.ParseAddrPort(p.Addr.String())
	if err != nil {
		return ctx
	}
	c := tp.clientOf(ap, metadata.ValueFromIncomingContext(ctx, "x-forwarded-for"))
	if c == ap {
		return ctx
	}
	np := *p
	np.Addr = net.TCPAddrFromAddrPort(c)
	return peer.NewContext(ctx, &np)
}
