package resource

import (
	"errors"
	"fmt"
	"strings"
)

// DHTNamespace is the kad-dht record namespace of public resource
// advertisements.
const DHTNamespace = "finp2p-res"

// DHTKey is the kad-dht key of a resource's advertisement.
func DHTKey(id ID) string { return "/" + DHTNamespace + "/" + id.String() }

// DHTValidator is the kad-dht validator of the finp2p-res namespace: the
// value must be a public advertisement of the resource its key names,
// signed by a node of the resource's org; the highest sequence wins.
type DHTValidator struct {
	V *AdvertisementVerifier
}

// Validate checks one value stored under key.
func (d DHTValidator) Validate(key string, value []byte) error {
	_, err := d.open(key, value)
	return err
}

func (d DHTValidator) open(key string, value []byte) (*SignedAdvertisement, error) {
	rest, ok := strings.CutPrefix(key, "/"+DHTNamespace+"/")
	if !ok {
		return nil, fmt.Errorf("dht key %q is not in namespace %s", key, DHTNamespace)
	}
	id, err := ParseID(rest)
	if err != nil {
		return nil, fmt.Errorf("dht key %q: %w", key, err)
	}
	sa, err := d.V.Open(value)
	if err != nil {
		return nil, err
	}
	if sa.Ad.Resource != id {
		return nil, fmt.Errorf("%w: advertisement of %s stored under %s", ErrBadAdvertisement, sa.Ad.Resource, key)
	}
	if sa.Ad.Restricted {
		return nil, fmt.Errorf("%w: restricted advertisement of %s offered to the DHT", ErrBadAdvertisement, sa.Ad.Resource)
	}
	return sa, nil
}

// Select picks the valid value with the highest sequence number.
func (d DHTValidator) Select(key string, values [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, v := range values {
		sa, err := d.open(key, v)
		if err != nil {
			continue
		}
		if best < 0 || sa.Ad.Seq > bestSeq {
			best, bestSeq = i, sa.Ad.Seq
		}
	}
	if best < 0 {
		return 0, errors.New("no valid resource advertisement among the values")
	}
	return best, nil
}
