package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/volume"
)

// placeVolume returns the volume context of the volume named name, with
// its own prefix, and its ID (volume IDs are package volume's codec; see the
// package comment for their form). A deletePolicy=delete volume whose ID
// would be too long with the readable prefix (see volumePrefix) gets the
// compact one, <StorageClass prefix>/<16 hex digits of SHA-256 of the name>;
// if even that does not fit, INVALID_ARGUMENT says why. Such a volume needs
// the controller's volume ID key (FAILED_PRECONDITION without one). The same
// arguments always give the same result.
func placeVolume(name string, p params, keys *volume.IDKeys) (volume.Context, string, error) {
	vc := p.vc
	vc.Prefix = volumePrefix(name, p)
	if p.deletePolicy != DeleteData {
		id, err := volume.DigestID(p.provisioning, digest(name, p, vc))
		if err != nil {
			return volume.Context{}, "", status.Errorf(codes.Internal, "making the volume ID: %v", err)
		}
		return vc, id, nil
	}
	if keys == nil {
		return volume.Context{}, "", status.Errorf(codes.FailedPrecondition,
			"parameter %q: %q needs the controller's volume ID key (hoard csi --volume-id-key-file, from a Secret): "+
				"without it a forged volume ID could make DeleteVolume delete another prefix", ParamDeletePolicy, DeleteData)
	}
	id, fits := keys.DeleteID(deleteID(vc))
	if !fits {
		vc.Prefix = p.vc.Prefix + compactSegment(name) + "/"
		if id, fits = keys.DeleteID(deleteID(vc)); !fits {
			return volume.Context{}, "", status.Errorf(codes.InvalidArgument,
				"parameter %q: with %q the volume ID must hold the endpoint, region, bucket and the volume's prefix "+
					"(so that DeleteVolume knows what to delete without a database); even with the shortest volume prefix "+
					"that is %d bytes and CSI allows %d: shorten prefix, endpoint or bucket, or use deletePolicy=%q",
				ParamDeletePolicy, DeleteData, len(id), volume.MaxIDLen, DeleteRetain)
		}
	}
	return vc, id, nil
}

// deleteID is what the ID of a deletePolicy=delete volume with context vc
// (whose Prefix is the volume's own) says.
func deleteID(vc volume.Context) volume.ID {
	return volume.ID{
		Provisioning: ProvisionPrefix, DeleteData: true,
		Endpoint: vc.Endpoint, Region: vc.Region, PathStyle: vc.PathStyle, Insecure: vc.Insecure,
		Bucket: vc.Bucket, Prefix: vc.Prefix,
	}
}

// compactSegment names a volume in the fewest bytes that keep names apart.
func compactSegment(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:8])
}

// digest identifies a volume whose deletion deletes nothing: a hash of its
// name and everything about it.
func digest(name string, p params, vc volume.Context) string {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s,", len(s), s) }
	field("hoard.dev volume h1")
	field(name)
	field(p.provisioning)
	field(p.deletePolicy)
	m := vc.Map()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		field(k)
		field(m[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:volume.DigestLen]
}
