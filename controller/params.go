package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/volume"
)

// StorageClass parameters the controller reads itself; the others are the
// volume context's (volume.ParseContext).
const (
	ParamProvisioning = "provisioning"
	ParamDeletePolicy = "deletePolicy"

	// Added by the external-provisioner when it runs with
	// --extra-create-metadata.
	ParamPVCName      = "csi.storage.k8s.io/pvc/name"
	ParamPVCNamespace = "csi.storage.k8s.io/pvc/namespace"
	ParamPVName       = "csi.storage.k8s.io/pv/name"
)

// Values of provisioning and deletePolicy.
const (
	ProvisionPrefix = volume.ProvisionPrefix
	ProvisionBucket = volume.ProvisionBucket
	DeleteRetain    = "retain"
	DeleteData      = "delete"
)

// params are validated StorageClass parameters.
type params struct {
	provisioning string // ProvisionPrefix or ProvisionBucket
	deletePolicy string // DeleteRetain or DeleteData
	// vc is the volume context as the StorageClass gives it: vc.Prefix is the
	// StorageClass's prefix, not yet the volume's.
	vc volume.Context
	// pvcNamespace and pvcName are set together or not at all.
	pvcNamespace, pvcName string
}

func invalid(err error) error { return status.Error(codes.InvalidArgument, err.Error()) }

var (
	// Kubernetes object names: a namespace is a DNS-1123 label, a PVC name a
	// DNS-1123 subdomain.
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// parseParams checks CreateVolumeRequest.parameters. Every error is
// InvalidArgument and names the parameter and what it wants.
func parseParams(m map[string]string) (params, error) {
	p := params{provisioning: ProvisionPrefix, deletePolicy: DeleteRetain}
	rest := maps.Clone(m)
	if rest == nil {
		rest = map[string]string{}
	}
	take := func(k string) (string, bool) {
		v, ok := rest[k]
		delete(rest, k)
		return v, ok
	}
	if v, ok := take(ParamProvisioning); ok {
		if v != ProvisionPrefix && v != ProvisionBucket {
			return params{}, invalid(paramErr(ParamProvisioning, "%q: want %q (a new prefix per volume) or %q (the bucket or prefix itself, shared)", v, ProvisionPrefix, ProvisionBucket))
		}
		p.provisioning = v
	}
	if v, ok := take(ParamDeletePolicy); ok {
		if v != DeleteRetain && v != DeleteData {
			return params{}, invalid(paramErr(ParamDeletePolicy, "%q: want %q (keep the objects) or %q (delete them with the volume)", v, DeleteRetain, DeleteData))
		}
		p.deletePolicy = v
	}
	if p.deletePolicy == DeleteData && p.provisioning != ProvisionPrefix {
		return params{}, invalid(paramErr(ParamDeletePolicy, "%q is only allowed with provisioning=%q: a %q volume is shared data that no volume owns", DeleteData, ProvisionPrefix, ProvisionBucket))
	}
	ns, hasNS := take(ParamPVCNamespace)
	name, hasName := take(ParamPVCName)
	pv, hasPV := take(ParamPVName)
	switch {
	case hasNS != hasName:
		missing := ParamPVCName
		if !hasNS {
			missing = ParamPVCNamespace
		}
		return params{}, invalid(paramErr(missing, "required together with %s and %s", ParamPVCName, ParamPVCNamespace))
	case hasNS && !dnsLabelRE.MatchString(ns):
		return params{}, invalid(paramErr(ParamPVCNamespace, "%q is not a Kubernetes namespace name", ns))
	case hasName && (len(name) > 253 || !dnsSubdomainRE.MatchString(name)):
		return params{}, invalid(paramErr(ParamPVCName, "%q is not a Kubernetes object name", name))
	case hasPV && (len(pv) > 253 || !dnsSubdomainRE.MatchString(pv)):
		return params{}, invalid(paramErr(ParamPVName, "%q is not a Kubernetes object name", pv))
	}
	p.pvcNamespace, p.pvcName = ns, name

	vc, err := volume.ParseContext(rest)
	if err != nil {
		return params{}, invalid(err)
	}
	p.vc = vc
	return p, nil
}

func paramErr(key, format string, a ...any) error {
	return &volume.ParamError{Key: key, Msg: fmt.Sprintf(format, a...)}
}

// Layout of prefix-provisioned volumes.
const (
	// maxPVCNameInKey is how much of a PVC name goes into the volume's
	// prefix; the hash after it keeps cut names apart.
	maxPVCNameInKey = 40
	// maxNameInKey is the longest volume name used as a key segment as is
	// (Kubernetes' pvc-<UID> is 40 bytes). Longer names are cut and get a
	// hash, so that a volume ID with the prefix in it fits in 128 bytes.
	maxNameInKey = 40
)

var safeSegmentRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// shortHash is 8 hex digits of SHA-256 of s.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// volumePrefix returns the prefix (ending with "/") that a volume shows: for
// bucket provisioning the StorageClass's prefix ("" for the whole bucket);
// for prefix provisioning a new one under it, named after the PVC when the
// provisioner says which (<prefix>/<namespace>/<pvc name>-<hash of the volume
// name>) or else after the volume (<prefix>/<volume name>, cut to 40 bytes
// with the hash if longer or not a safe key segment).
func volumePrefix(name string, p params) string {
	if p.provisioning == ProvisionBucket {
		return p.vc.Prefix
	}
	var seg string
	if p.pvcName != "" {
		pvc := p.pvcName
		if len(pvc) > maxPVCNameInKey {
			pvc = strings.TrimRight(pvc[:maxPVCNameInKey], ".-")
		}
		seg = p.pvcNamespace + "/" + pvc + "-" + shortHash(name)
	} else {
		seg = nameSegment(name)
	}
	return p.vc.Prefix + seg + "/"
}

// nameSegment returns name if it is a safe key segment, else a readable
// sanitised form of it with a hash of the original, so that distinct names
// stay distinct.
func nameSegment(name string) string {
	if len(name) <= maxNameInKey && safeSegmentRE.MatchString(name) {
		return name
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r < 0x80 && (r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= maxNameInKey {
			break
		}
	}
	s := strings.Trim(b.String(), "._-")
	if s == "" {
		s = "volume"
	}
	return s + "-" + shortHash(name)
}

// checkName checks CreateVolumeRequest.name: required, at most 128 bytes
// (the CSI limit for strings), none of the control characters the spec bans.
func checkName(name string) error {
	if name == "" {
		return status.Error(codes.InvalidArgument, "name: required")
	}
	if len(name) > 128 {
		return status.Errorf(codes.InvalidArgument, "name: %d bytes, longer than the CSI limit of 128", len(name))
	}
	for _, r := range name {
		if r <= 0x08 || r == 0x0b || r == 0x0c || (r >= 0x0e && r <= 0x1f) || (r >= 0x7f && r <= 0x9f) {
			return status.Errorf(codes.InvalidArgument, "name: contains the control character %U, which CSI does not allow", r)
		}
	}
	return nil
}
