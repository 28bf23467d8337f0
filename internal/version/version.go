// Package version identifies the running acp-sandbox binary. The host and
// the guest run the same file, so its content hash is the protocol version:
// a warm VM started by an older binary answers with another hash and is
// replaced.
package version

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"sync"
)

var (
	once sync.Once
	hash string
	err  error
)

// Hash returns the first 16 hex characters of the SHA-256 of the running
// executable.
func Hash() (string, error) {
	once.Do(func() {
		var exe string
		if exe, err = os.Executable(); err != nil {
			return
		}
		hash, err = FileHash(exe)
	})
	return hash, err
}

// FileHash hashes a file the way Hash hashes the executable.
func FileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
