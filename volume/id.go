package volume

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Volume IDs. See the package comment for the format and why.
const (
	// MaxIDLen is the CSI limit for a string field, which volume_id does
	// not override.
	MaxIDLen = 128
	// DigestLen is the length in hex digits of the digest of an ID whose
	// deletion deletes nothing.
	DigestLen = 32

	// ProvisionPrefix and ProvisionBucket are the two kinds of volume: a
	// new prefix per volume, or a bucket (or prefix) shared as it is.
	ProvisionPrefix = "prefix"
	ProvisionBucket = "bucket"

	idDigest = "h1" // digest IDs, and the unkeyed delete IDs of old
	idKeyed  = "h2" // delete IDs with an HMAC
	// Flags of the kinds of ID.
	flagsPrefixDelete = "pd" // followed by "s" (path style) and/or "i" (insecure)
	flagsPrefixRetain = "pr"
	flagsBucket       = "br"
	legacyCheckLen    = 8  // hex digits of an h1 delete ID's unkeyed check
	macBytes          = 12 // of HMAC-SHA256 in an h2 delete ID: 96 bits
	// MinIDKeyLen is the shortest key ParseIDKeys takes.
	MinIDKeyLen = 32
)

// macLen is the length of a MAC in an ID (base64url, no padding).
var macLen = base64.RawURLEncoding.EncodedLen(macBytes)

// Errors of ParseID.
var (
	// ErrNotHoardID: the ID is not one a hoard controller made, or it was
	// altered, or its MAC was made with a key this controller does not hold.
	ErrNotHoardID = errors.New("not a hoard volume ID")
	// ErrNoIDKey: the ID carries a MAC, and no key was given to check it.
	ErrNoIDKey = errors.New("the controller has no volume ID key to check this ID's MAC")
)

// ID is what a volume ID says.
type ID struct {
	Provisioning string // ProvisionPrefix or ProvisionBucket
	// DeleteData: DeleteVolume deletes everything under Prefix. Only then
	// are the fields below set.
	DeleteData          bool
	Endpoint, Region    string
	PathStyle, Insecure bool
	Bucket              string
	Prefix              string // ends with "/"
	// Unverified marks a delete ID of the old h1 form, whose check is a
	// plain hash anyone can compute: it proves nothing about who wrote it,
	// so its data must not be deleted on its word.
	Unverified bool
}

// IDKeys are the controller's keys for the MAC of delete IDs: the first
// signs, every one verifies (keep the old key after the new one while
// rotating). Build it with ParseIDKeys.
type IDKeys struct {
	keys [][]byte
}

// ParseIDKeys reads keys, one per line (the content of a key file from a
// Kubernetes Secret); blank lines and lines starting with '#' are skipped,
// surrounding white space is trimmed. Each key must have at least
// MinIDKeyLen bytes (e.g. 64 hex digits: openssl rand -hex 32). Errors never
// contain a key.
func ParseIDKeys(b []byte) (*IDKeys, error) {
	k := &IDKeys{}
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(line) < MinIDKeyLen {
			return nil, fmt.Errorf("volume ID key on line %d: %d bytes, want at least %d (e.g. openssl rand -hex 32)",
				i+1, len(line), MinIDKeyLen)
		}
		k.keys = append(k.keys, bytes.Clone(line))
	}
	if len(k.keys) == 0 {
		return nil, errors.New("no volume ID key (want one key per line, the first signs)")
	}
	return k, nil
}

func (k *IDKeys) mac(key []byte, flags, body string) []byte {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "hoard.dev volume id %s/%s/%s", idKeyed, flags, body)
	return h.Sum(nil)[:macBytes]
}

// verify reports whether mac is body's MAC under any of the keys; every key
// is tried, so the time taken does not say which matched.
func (k *IDKeys) verify(flags, body, mac string) bool {
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || len(got) != macBytes {
		return false
	}
	ok := false
	for _, key := range k.keys {
		if hmac.Equal(got, k.mac(key, flags, body)) {
			ok = true
		}
	}
	return ok
}

// DigestID returns the ID of a volume whose deletion deletes nothing: it
// needs no content, only uniqueness, so it is a digest (DigestLen lower-case
// hex digits) the controller computed from everything about the volume.
func DigestID(provisioning, digest string) (string, error) {
	if len(digest) != DigestLen || !isLowerHex(digest) {
		return "", fmt.Errorf("volume ID digest %q: want %d lower-case hex digits", digest, DigestLen)
	}
	flags := flagsPrefixRetain
	if provisioning == ProvisionBucket {
		flags = flagsBucket
	}
	return idDigest + "/" + flags + "/" + digest, nil
}

// DeleteID returns the ID of a volume whose prefix DeleteVolume deletes,
// with the MAC of k's first key, and whether it fits in MaxIDLen. v must
// have DeleteData set and a Prefix.
func (k *IDKeys) DeleteID(v ID) (string, bool) {
	flags := flagsPrefixDelete
	if v.PathStyle {
		flags += "s"
	}
	if v.Insecure {
		flags += "i"
	}
	body := strings.Join([]string{v.Endpoint, v.Region, v.Bucket, strings.TrimSuffix(v.Prefix, "/")}, "/")
	mac := base64.RawURLEncoding.EncodeToString(k.mac(k.keys[0], flags, body))
	id := idKeyed + "/" + flags + "/" + mac + "/" + body
	return id, len(id) <= MaxIDLen
}

// ParseID reads a volume ID. keys may be nil; a delete ID with a MAC then
// fails with ErrNoIDKey. An ID that is not hoard's, was altered, or has a
// MAC none of keys made fails with ErrNotHoardID. An h1 delete ID (an older
// controller's, with an unkeyed check) parses with Unverified set.
func ParseID(id string, keys *IDKeys) (ID, error) {
	parts := strings.SplitN(id, "/", 3)
	if len(parts) != 3 || len(id) > MaxIDLen {
		return ID{}, ErrNotHoardID
	}
	version, flags, rest := parts[0], parts[1], parts[2]
	switch {
	case version == idDigest && (flags == flagsPrefixRetain || flags == flagsBucket):
		if len(rest) != DigestLen || !isLowerHex(rest) {
			return ID{}, ErrNotHoardID
		}
		v := ID{Provisioning: ProvisionPrefix}
		if flags == flagsBucket {
			v.Provisioning = ProvisionBucket
		}
		return v, nil
	case version != idDigest && version != idKeyed:
		return ID{}, ErrNotHoardID
	}
	switch flags {
	case flagsPrefixDelete, flagsPrefixDelete + "s", flagsPrefixDelete + "i", flagsPrefixDelete + "si":
	default:
		return ID{}, ErrNotHoardID
	}
	sum, body, ok := strings.Cut(rest, "/")
	if !ok {
		return ID{}, ErrNotHoardID
	}
	unverified := false
	switch {
	case version == idDigest:
		if len(sum) != legacyCheckLen || sum != legacyCheck(flags, body) {
			return ID{}, ErrNotHoardID
		}
		unverified = true
	case len(sum) != macLen:
		return ID{}, ErrNotHoardID
	case keys == nil:
		return ID{}, ErrNoIDKey
	case !keys.verify(flags, body, sum):
		return ID{}, ErrNotHoardID
	}
	v, err := parseBody(body)
	if err != nil {
		return ID{}, err
	}
	v.PathStyle = strings.Contains(flags[2:], "s")
	v.Insecure = strings.Contains(flags[2:], "i")
	v.Unverified = unverified
	return v, nil
}

// parseBody re-validates a delete ID's endpoint/region/bucket/prefix as the
// StorageClass parameters were: even a genuine ID must not reach the store
// with a prefix that is not one.
func parseBody(body string) (ID, error) {
	f := strings.SplitN(body, "/", 4)
	if len(f) != 4 || f[3] == "" {
		return ID{}, ErrNotHoardID
	}
	m := map[string]string{KeyBucket: f[2], KeyPrefix: f[3]}
	if f[0] != "" {
		m[KeyEndpoint] = f[0]
	}
	if f[1] != "" {
		m[KeyRegion] = f[1]
	}
	vc, err := ParseContext(m)
	if err != nil || vc.Prefix == "" || vc.Endpoint != f[0] {
		return ID{}, ErrNotHoardID
	}
	return ID{
		Provisioning: ProvisionPrefix, DeleteData: true,
		Endpoint: vc.Endpoint, Region: vc.Region, Bucket: vc.Bucket, Prefix: vc.Prefix,
	}, nil
}

// legacyCheck is the unkeyed check of an h1 delete ID.
func legacyCheck(flags, body string) string {
	h := sha256.Sum256([]byte("hoard.dev volume id " + idDigest + "/" + flags + "/" + body))
	return hex.EncodeToString(h[:])[:legacyCheckLen]
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
