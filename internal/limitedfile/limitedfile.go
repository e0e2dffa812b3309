// Package limitedfile reads small input files (keys, certificates, requests,
// revocation lists) with a size limit, so a wrong path to a huge file fails
// with a clear error instead of filling memory.
package limitedfile

import (
	"fmt"
	"io"
	"os"
)

// Read returns the content of path, refusing a file larger than limit bytes.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: larger than the %d bytes allowed", path, limit)
	}
	return data, nil
}
