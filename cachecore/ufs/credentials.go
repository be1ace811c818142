package ufs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// Credentials are one tenant's static S3 credentials, as a client passes
// them to a worker so that the worker reads with the tenant's rights, not
// its own. String and LogValue never show the secret or the token.
type Credentials struct {
	AccessKey, SecretKey, SessionToken string
}

// IsZero reports whether no credentials are set.
func (c Credentials) IsZero() bool { return c == Credentials{} }

// Fingerprint names the credentials without revealing them: the first 128
// bits of SHA-256 over the length-prefixed fields, in hex. Caches key
// authorization decisions by it.
func (c Credentials) Fingerprint() string {
	h := sha256.New()
	for _, f := range []string{"hoard credentials v1", c.AccessKey, c.SecretKey, c.SessionToken} {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// String shows the access key's last four characters only.
func (c Credentials) String() string {
	return fmt.Sprintf("Credentials{AccessKey:%q SecretKey:%q SessionToken:%q}", maskKey(c.AccessKey), hideSecret(c.SecretKey), hideSecret(c.SessionToken))
}

// GoString is String.
func (c Credentials) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without secrets.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_key", maskKey(c.AccessKey)), slog.String("fingerprint", c.Fingerprint()))
}

// WithCredentials returns c reading with creds instead of its own.
func (c S3Config) WithCredentials(creds Credentials) S3Config {
	c.AccessKey, c.SecretKey, c.SessionToken = creds.AccessKey, creds.SecretKey, creds.SessionToken
	return c
}

// StaticCredentials returns c's static credentials (zero when it uses the
// ambient chain).
func (c S3Config) StaticCredentials() Credentials {
	return Credentials{AccessKey: c.AccessKey, SecretKey: c.SecretKey, SessionToken: c.SessionToken}
}
