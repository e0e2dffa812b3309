package node

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/finp2p/go-finp2p/discovery"
)

// MinAdvertisementTTL keeps re-advertising (at a third of the TTL) from
// flooding the network.
const MinAdvertisementTTL = 30 * time.Second

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

func checkNames(kind string, names []string) error {
	for _, s := range names {
		if !namePattern.MatchString(s) {
			return fmt.Errorf("%s name %q is not valid: want [A-Za-z0-9][A-Za-z0-9._:/-]{0,127}", kind, s)
		}
	}
	if len(names) > discovery.MaxServices {
		return fmt.Errorf("%d %ss, at most %d", len(names), kind, discovery.MaxServices)
	}
	return nil
}

func checkAdvertisementTTL(d time.Duration) error {
	if d < MinAdvertisementTTL || d > discovery.MaxValidity {
		return fmt.Errorf("advertisement TTL %s is not between %s and %s", d, MinAdvertisementTTL, discovery.MaxValidity)
	}
	return nil
}

// checkAnnounceAddr checks the form of an announce address; whether the
// network allows it (public or not) is checked at start, against the genesis.
func checkAnnounceAddr(s string) error {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return fmt.Errorf("announce address %q: %w", s, err)
	}
	if err := discovery.CheckAddr(a, true); err != nil {
		return fmt.Errorf("announce address %q: %w", s, err)
	}
	return nil
}

// noAnnounce is the parsed NoAnnounce list.
type noAnnounce struct {
	exact []ma.Multiaddr
	nets  []*net.IPNet
}

func parseNoAnnounce(list []string) (noAnnounce, error) {
	var f noAnnounce
	for _, s := range list {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return f, fmt.Errorf("no_announce entry %q: %w", s, err)
		}
		if ipnet, ok := cidrOf(a); ok {
			f.nets = append(f.nets, ipnet)
			continue
		}
		f.exact = append(f.exact, a)
	}
	return f, nil
}

// cidrOf reads /ip4/<net>/ipcidr/<bits> (or ip6) as an IP range.
func cidrOf(a ma.Multiaddr) (*net.IPNet, bool) {
	if len(a) != 2 || a[1].Protocol().Code != ma.P_IPCIDR {
		return nil, false
	}
	code := a[0].Protocol().Code
	if code != ma.P_IP4 && code != ma.P_IP6 {
		return nil, false
	}
	_, ipnet, err := net.ParseCIDR(a[0].Value() + "/" + a[1].Value())
	if err != nil {
		return nil, false
	}
	return ipnet, true
}

func (f noAnnounce) excludes(a ma.Multiaddr) bool {
	if slices.ContainsFunc(f.exact, a.Equal) {
		return true
	}
	if len(f.nets) == 0 {
		return false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(f.nets, func(n *net.IPNet) bool { return n.Contains(ip) })
}
