package discovery

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"github.com/finp2p/go-finp2p/protocols"
)

// DHTNamespace is the kad-dht record namespace of org advertisements.
const DHTNamespace = "finp2p-org"

// DHTKey is the kad-dht key of one node's advertisement:
// /finp2p-org/<org>/<peer>. Each node of a cluster has its own key, so two
// nodes of one org never overwrite each other.
func DHTKey(org string, p peer.ID) string {
	return "/" + DHTNamespace + "/" + org + "/" + p.String()
}

// OrgCID is the content ID an org's nodes provide in the kad-dht, so that
// finding the providers of it finds the org's nodes and their keys.
func OrgCID(org string) cid.Cid {
	sum, err := mh.Sum([]byte(DHTNamespace+"/"+org), mh.SHA2_256, -1)
	if err != nil {
		// sha2-256 with the default length cannot fail.
		panic(fmt.Sprintf("org cid: %v", err))
	}
	return cid.NewCidV1(cid.Raw, sum)
}

func parseDHTKey(key string) (org string, p peer.ID, err error) {
	rest, ok := strings.CutPrefix(key, "/"+DHTNamespace+"/")
	if !ok {
		return "", "", fmt.Errorf("dht key %q is not in namespace %s", key, DHTNamespace)
	}
	org, ps, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", fmt.Errorf("dht key %q is not /%s/<org>/<peer>", key, DHTNamespace)
	}
	if p, err = peer.Decode(ps); err != nil {
		return "", "", fmt.Errorf("dht key %q: peer: %w", key, err)
	}
	return org, p, nil
}

// DHTValidator is the kad-dht record validator of the finp2p-org namespace:
// a value must be a sealed advertisement that passes the Verifier and is of
// the org and peer its key names; of several, the highest sequence wins.
type DHTValidator struct {
	V *Verifier
}

// Validate checks one value stored under key.
func (d DHTValidator) Validate(key string, value []byte) error {
	_, err := d.open(key, value)
	return err
}

func (d DHTValidator) open(key string, value []byte) (*Record, error) {
	org, p, err := parseDHTKey(key)
	if err != nil {
		return nil, err
	}
	rec, err := d.V.Open(value)
	if err != nil {
		return nil, err
	}
	if rec.Ad.Org != org || rec.Ad.Peer != p {
		return nil, fmt.Errorf("%w: advertisement of %s/%s stored under %s", ErrForged, rec.Ad.Org, rec.Ad.Peer, key)
	}
	return rec, nil
}

// Select picks the valid value with the highest sequence number, the
// first of equals. kad-dht has usually just validated each value, so rather
// than verify them all again it orders them by the sequence number an
// unchecked decoding gives and verifies them in that order until one
// passes: a value that fails verification, whatever sequence it claims, is
// skipped as before.
func (d DHTValidator) Select(key string, values [][]byte) (int, error) {
	if _, _, err := parseDHTKey(key); err != nil {
		return 0, err
	}
	type candidate struct {
		i   int
		seq uint64
	}
	cands := make([]candidate, 0, len(values))
	for i, v := range values {
		if len(v) > protocols.MaxAdvertisementSize {
			continue
		}
		var ad Advertisement
		if _, err := unsealUnchecked(v, &ad); err != nil {
			continue // Open would refuse it too
		}
		cands = append(cands, candidate{i, ad.Seq})
	}
	// Highest sequence first; a stable sort keeps equals in value order.
	slices.SortStableFunc(cands, func(a, b candidate) int { return cmp.Compare(b.seq, a.seq) })
	for _, c := range cands {
		if _, err := d.open(key, values[c.i]); err == nil {
			return c.i, nil
		}
	}
	return 0, errors.New("no valid advertisement among the values")
}
