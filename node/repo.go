package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/finp2p/go-finp2p/governance"
	"github.com/finp2p/go-finp2p/internal/atomicfile"
)

// InitOptions say who a new node is.
type InitOptions struct {
	// Org is the organisation id the node will be certified for.
	Org string
	// Role is the role the node asks for; the certifying authority decides.
	Role governance.Role
	// Genesis, if set, is copied into the repo as genesis.json.
	Genesis string
	// Config is written as config.json; zero means DefaultConfig.
	Config *Config
}

// InitResult says what Init created.
type InitResult struct {
	PeerID  peer.ID
	KeyFile string
	CSRFile string
}

// Init creates a node repo: the directory (0700), the node's Ed25519 key
// (0600, created once and never overwritten), a PKCS#10 request for its
// certificate, the API bearer token (0600) and config.json.
func Init(dir string, o InitOptions) (InitResult, error) {
	if dir == "" {
		return InitResult{}, errors.New("init: repo directory is empty")
	}
	if o.Role == "" {
		o.Role = governance.RoleMember
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return InitResult{}, fmt.Errorf("init: create repo %s: %w", dir, err)
	}
	keyPath := filepath.Join(dir, KeyFileName)
	if _, err := os.Stat(keyPath); err == nil {
		return InitResult{}, fmt.Errorf("init: repo %s already holds a node key (%s); a node key is created once", dir, keyPath)
	}
	var genesis []byte
	if o.Genesis != "" {
		g, err := governance.LoadGenesis(o.Genesis)
		if err != nil {
			return InitResult{}, fmt.Errorf("init: %w", err)
		}
		if genesis, err = g.Marshal(); err != nil {
			return InitResult{}, fmt.Errorf("init: %w", err)
		}
	}

	key, err := governance.GenerateKey()
	if err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	csr, err := governance.CreateNodeCSR(key, o.Org, o.Role)
	if err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	id, err := governance.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	cfg := DefaultConfig()
	if o.Config != nil {
		cfg = *o.Config
	}
	// The key goes last: a repo with a key is an initialised repo, so a
	// failure before it leaves a directory init can simply run in again.
	token, err := newToken()
	if err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	config, err := marshalConfig(cfg)
	if err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{CSRFileName, governance.EncodeCSRPEM(csr), 0o644},
		{TokenFileName, token, 0o600},
		{ConfigFileName, config, 0o644},
		{GenesisFileName, genesis, 0o644},
	}
	for _, f := range files {
		if f.data == nil {
			continue
		}
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return InitResult{}, fmt.Errorf("init: %w", err)
		}
	}
	if err := governance.WriteKeyFile(keyPath, key); err != nil {
		return InitResult{}, fmt.Errorf("init: %w", err)
	}
	return InitResult{PeerID: id, KeyFile: keyPath, CSRFile: filepath.Join(dir, CSRFileName)}, nil
}

// Open reads dir/config.json and returns the node it describes; opts
// override the file.
func Open(dir string, opts ...Option) (*Node, error) {
	f, err := LoadConfigFile(filepath.Join(dir, ConfigFileName))
	if err != nil {
		return nil, err
	}
	return New(append([]Option{WithRepo(dir), WithConfig(f)}, opts...)...)
}

// ReadToken returns the API bearer token of the repo in dir.
func ReadToken(dir string) (string, error) {
	path := filepath.Join(dir, TokenFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read API token %s: %w", path, err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("API token file %s is empty", path)
	}
	return tok, nil
}

func newToken() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate API token: %w", err)
	}
	return []byte(hex.EncodeToString(b) + "\n"), nil
}
