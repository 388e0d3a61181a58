package firmware

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"aead.dev/minisign"
)

// Signature problems.
var (
	ErrUnsigned     = errors.New("firmware: the image has no signature")
	ErrUntrustedKey = errors.New("firmware: the image is signed by a key the bench does not trust")
	ErrBadSignature = errors.New("firmware: the signature does not match the image's bytes")
	ErrNoKeys       = errors.New("firmware: the bench trusts no signing key")
)

// Keyring holds the minisign public keys the bench trusts, each under a
// name (the signer recorded in the catalog).
type Keyring struct {
	keys []namedKey
}

type namedKey struct {
	name string
	key  minisign.PublicKey
}

// Add trusts a public key given as minisign prints it: the base64 line,
// optionally preceded by its "untrusted comment:" line.
func (k *Keyring) Add(name, text string) error {
	var pk minisign.PublicKey
	if err := pk.UnmarshalText([]byte(strings.TrimSpace(lastLine(text)))); err != nil {
		return fmt.Errorf("firmware: key %s: %w", name, err)
	}
	k.keys = append(k.keys, namedKey{name, pk})
	return nil
}

// AddFile trusts the public key in a minisign .pub file; its name is the
// file's name without .pub unless name is given.
func (k *Keyring) AddFile(name, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if name == "" {
		name = strings.TrimSuffix(baseName(path), ".pub")
	}
	if err := k.Add(name, string(b)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Len returns the number of trusted keys.
func (k *Keyring) Len() int {
	if k == nil {
		return 0
	}
	return len(k.keys)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Verify checks a minisign signature (the text of a .minisig file) over
// data and returns the name of the trusted key that made it. Errors wrap
// ErrUnsigned, ErrNoKeys, ErrUntrustedKey or ErrBadSignature.
func (k *Keyring) Verify(data, sig []byte) (signer string, err error) {
	if len(strings.TrimSpace(string(sig))) == 0 {
		return "", ErrUnsigned
	}
	if k.Len() == 0 {
		return "", ErrNoKeys
	}
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return "", fmt.Errorf("%w: the signature is unreadable (%v)", ErrBadSignature, err)
	}
	for _, nk := range k.keys {
		if nk.key.ID() != s.KeyID {
			continue
		}
		if minisign.Verify(nk.key, data, sig) {
			return nk.name, nil
		}
		return "", fmt.Errorf("%w (key %s, id %016X)", ErrBadSignature, nk.name, s.KeyID)
	}
	return "", fmt.Errorf("%w (key id %016X)", ErrUntrustedKey, s.KeyID)
}

// Sign signs data with a minisign private key given as the text of an
// unencrypted minisign secret key file, returning the .minisig text. It is
// for tests and tools that build signed test images; production keys are
// kept off the bench.
func Sign(secretKey []byte, data []byte, comment string) ([]byte, error) {
	var sk minisign.PrivateKey
	if err := sk.UnmarshalText(secretKey); err != nil {
		return nil, fmt.Errorf("firmware: secret key: %w", err)
	}
	return minisign.SignWithComments(sk, data, comment, "signature from unbrick"), nil
}
