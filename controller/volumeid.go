package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/driver"
)

// Volume IDs. See the package comment for the format and why.
const (
	idVersion = "h1"
	// maxIDLen is the CSI limit for a string field, which volume_id does not
	// override.
	maxIDLen = 128
	// Flags of the three kinds of ID.
	flagsPrefixDelete = "pd" // followed by "s" (path style) and/or "i" (insecure)
	flagsPrefixRetain = "pr"
	flagsBucket       = "br"
	checkLen          = 8  // hex digits of the check of a full ID
	digestLen         = 32 // hex digits of the digest of a short ID
)

// volumeID is what a volume ID says.
type volumeID struct {
	provisioning string // ProvisionPrefix or ProvisionBucket
	// deleteData: DeleteVolume deletes everything under prefix. Only then
	// are the fields below set.
	deleteData          bool
	endpoint, region    string
	pathStyle, insecure bool
	bucket              string
	prefix              string // ends with "/"
}

// placeVolume returns the volume context of the volume named name, with
// its own prefix, and its ID. A deletePolicy=delete volume whose ID would be
// too long with the readable prefix (see volumePrefix) gets the compact one,
// <StorageClass prefix>/<16 hex digits of SHA-256 of the name>; if even that
// does not fit, INVALID_ARGUMENT says why. The same arguments always give the
// same result.
func placeVolume(name string, p params) (driver.VolumeContext, string, error) {
	vc := p.vc
	vc.Prefix = volumePrefix(name, p)
	id, fits := makeID(name, p, vc)
	if !fits {
		vc.Prefix = p.vc.Prefix + compactSegment(name) + "/"
		if id, fits = makeID(name, p, vc); !fits {
			return driver.VolumeContext{}, "", status.Errorf(codes.InvalidArgument,
				"parameter %q: with %q the volume ID must hold the endpoint, region, bucket and the volume's prefix "+
					"(so that DeleteVolume knows what to delete without a database); even with the shortest volume prefix "+
					"that is %d bytes and CSI allows %d: shorten prefix, endpoint or bucket, or use deletePolicy=%q",
				ParamDeletePolicy, DeleteData, len(id), maxIDLen, DeleteRetain)
		}
	}
	return vc, id, nil
}

// compactSegment names a volume in the fewest bytes that keep names apart.
func compactSegment(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:8])
}

// makeID returns the ID of the volume named name with parameters p and
// volume context vc (whose Prefix is the volume's own), and whether it fits
// in maxIDLen. The same arguments always give the same ID.
func makeID(name string, p params, vc driver.VolumeContext) (string, bool) {
	if p.deletePolicy != DeleteData {
		flags := flagsPrefixRetain
		if p.provisioning == ProvisionBucket {
			flags = flagsBucket
		}
		return idVersion + "/" + flags + "/" + digest(name, p, vc), true
	}
	flags := flagsPrefixDelete
	if vc.PathStyle {
		flags += "s"
	}
	if vc.Insecure {
		flags += "i"
	}
	body := strings.Join([]string{vc.Endpoint, vc.Region, vc.Bucket, strings.TrimSuffix(vc.Prefix, "/")}, "/")
	id := idVersion + "/" + flags + "/" + check(flags, body) + "/" + body
	return id, len(id) <= maxIDLen
}

// digest identifies a volume whose deletion deletes nothing: a hash of its
// name and everything about it.
func digest(name string, p params, vc driver.VolumeContext) string {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s,", len(s), s) }
	field("hoard.dev volume " + idVersion)
	field(name)
	field(p.provisioning)
	field(p.deletePolicy)
	m := vc.Map()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		field(k)
		field(m[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:digestLen]
}

// check guards a full ID against hand-made or damaged copies: DeleteVolume
// deletes data only for IDs this controller made.
func check(flags, body string) string {
	h := sha256.Sum256([]byte("hoard.dev volume id " + idVersion + "/" + flags + "/" + body))
	return hex.EncodeToString(h[:])[:checkLen]
}

// parseID reads a volume ID; false means it is not one this controller made
// (or it was altered).
func parseID(id string) (volumeID, bool) {
	parts := strings.SplitN(id, "/", 3)
	if len(parts) != 3 || parts[0] != idVersion || len(id) > maxIDLen {
		return volumeID{}, false
	}
	flags, rest := parts[1], parts[2]
	switch flags {
	case flagsPrefixRetain, flagsBucket:
		if len(rest) != digestLen || !isLowerHex(rest) {
			return volumeID{}, false
		}
		v := volumeID{provisioning: ProvisionPrefix}
		if flags == flagsBucket {
			v.provisioning = ProvisionBucket
		}
		return v, true
	case flagsPrefixDelete, flagsPrefixDelete + "s", flagsPrefixDelete + "i", flagsPrefixDelete + "si":
	default:
		return volumeID{}, false
	}
	sum, body, ok := strings.Cut(rest, "/")
	if !ok || sum != check(flags, body) {
		return volumeID{}, false
	}
	f := strings.SplitN(body, "/", 4)
	if len(f) != 4 || f[3] == "" {
		return volumeID{}, false
	}
	// Re-validate as the parameters were: a damaged ID must not reach the
	// store, least of all with a prefix that is not one.
	m := map[string]string{driver.KeyBucket: f[2], driver.KeyPrefix: f[3]}
	if f[0] != "" {
		m[driver.KeyEndpoint] = f[0]
	}
	if f[1] != "" {
		m[driver.KeyRegion] = f[1]
	}
	vc, err := driver.ParseVolumeContext(m)
	if err != nil || vc.Prefix == "" {
		return volumeID{}, false
	}
	return volumeID{
		provisioning: ProvisionPrefix,
		deleteData:   true,
		endpoint:     vc.Endpoint,
		region:       vc.Region,
		pathStyle:    strings.Contains(flags[2:], "s"),
		insecure:     strings.Contains(flags[2:], "i"),
		bucket:       vc.Bucket,
		prefix:       vc.Prefix,
	}, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
