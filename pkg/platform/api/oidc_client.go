package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// A tenant administrator chooses where exo-app sends OIDC requests (the
// issuer's discovery document, then its jwks_uri and token_endpoint, with
// the client secret). Outside dev mode those requests may only leave for
// public addresses: the check runs on the address actually dialled, after
// DNS resolution and on every redirect, so a name that resolves to an
// internal address (or re-resolves to one: DNS rebinding) is refused too.

// blockedNetworks are never an identity provider's address unless allowed
// explicitly (EXO_OIDC_ALLOWED_NETWORKS), besides what netip classifies as
// loopback, private, link-local, multicast and unspecified.
var blockedNetworks = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT, often cluster-internal
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 reaches IPv4 addresses through IPv6
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4 embeds IPv4 addresses
	netip.MustParsePrefix("fd00:ec2::/32"),  // cloud metadata over IPv6
}

// publicAddress reports whether a may be dialled for an identity provider.
func publicAddress(a netip.Addr, allowed []netip.Prefix) bool {
	a = a.Unmap()
	for _, n := range allowed {
		if n.Contains(a) {
			return true
		}
	}
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, n := range blockedNetworks {
		if n.Contains(a) {
			return false
		}
	}
	return true
}

// guardedClient is the HTTP client for identity providers outside dev mode.
// It uses no proxy from the environment: a proxy would be the address
// dialled and checked, not the provider.
func guardedClient(allowed []netip.Prefix) *http.Client {
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("identity provider address %q: %w", address, err)
			}
			if !publicAddress(ap.Addr(), allowed) {
				return fmt.Errorf("identity provider address %s is internal (loopback, private, link-local or metadata); "+
					"allow its network with EXO_OIDC_ALLOWED_NETWORKS if it is an on-premises provider", ap.Addr())
			}
			return nil
		},
	}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConns:          16,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return fmt.Errorf("identity provider redirected more than 5 times")
			}
			if req.URL.Scheme != "https" {
				return fmt.Errorf("identity provider redirected to a non-https URL")
			}
			return nil
		},
	}
}
