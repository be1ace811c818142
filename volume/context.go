package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"hoard.dev/hoard/cachecore/ufs"
)

// Keys of the volume context (and of the StorageClass parameters that share
// them).
const (
	KeyBucket       = "bucket"
	KeyPrefix       = "prefix"
	KeyEndpoint     = "endpoint"
	KeyRegion       = "region"
	KeyPathStyle    = "pathStyle"
	KeyInsecure     = "insecure"
	KeyUID          = "uid"
	KeyGID          = "gid"
	KeyFileMode     = "fileMode"
	KeyDirMode      = "dirMode"
	KeyMetadataTTL  = "metadataTTL"
	KeyCacheCluster = "cacheCluster"
)

// Limits on values, so that a volume context stays far below the CSI limit
// of 4 KiB for a map.
const (
	MaxPrefixLen   = 512
	maxEndpointLen = 260
)

// Key prefixes Kubernetes uses for keys of its own in the volume context.
var kubernetesKeyPrefixes = []string{"csi.storage.k8s.io/", "storage.kubernetes.io/"}

// IsKubernetesKey reports whether key belongs to Kubernetes
// (csi.storage.k8s.io/... or storage.kubernetes.io/...).
func IsKubernetesKey(key string) bool {
	for _, p := range kubernetesKeyPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Context is what a node needs to serve a volume, apart from
// credentials. The zero values of the optional fields mean "the node's
// default".
type Context struct {
	Bucket string
	// Prefix is "" (the whole bucket) or a key prefix ending with "/", the
	// form of ufs.Location.Prefix.
	Prefix string
	// Endpoint is host[:port] without a scheme; "" means Amazon S3.
	Endpoint  string
	Region    string
	PathStyle bool
	// Insecure means plain http.
	Insecure bool

	UID, GID          *uint32
	FileMode, DirMode fs.FileMode
	// MetadataTTL nil means the node's default; 0 caches nothing.
	MetadataTTL  *time.Duration
	CacheCluster string
}

// ParamError is a volume context key (or StorageClass parameter) with a value
// that is not allowed. Its message names the key and what is expected.
type ParamError struct {
	Key string
	Msg string
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %q: %s", e.Key, e.Msg) }

func paramErr(key, format string, a ...any) error {
	return &ParamError{Key: key, Msg: fmt.Sprintf(format, a...)}
}

// ParseContext parses and checks a volume context (or the
// StorageClass parameters that share its keys). Errors are *ParamError.
// Kubernetes' own keys are ignored; any other unknown key is an error.
func ParseContext(m map[string]string) (Context, error) {
	var v Context
	var unknown []string
	// Sorted, so that the first error reported is always the same one.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val := m[k]
		var err error
		switch k {
		case KeyBucket:
			v.Bucket, err = parseBucket(val)
		case KeyPrefix:
			v.Prefix, err = ParsePrefix(k, val)
		case KeyEndpoint:
			// Checked together with insecure below.
		case KeyRegion:
			v.Region, err = parseRegion(val)
		case KeyPathStyle:
			v.PathStyle, err = parseBool(k, val)
		case KeyInsecure:
			v.Insecure, err = parseBool(k, val)
		case KeyUID:
			v.UID, err = parseID(k, val)
		case KeyGID:
			v.GID, err = parseID(k, val)
		case KeyFileMode:
			v.FileMode, err = parseMode(k, val)
		case KeyDirMode:
			v.DirMode, err = parseMode(k, val)
		case KeyMetadataTTL:
			v.MetadataTTL, err = parseTTL(val)
		case KeyCacheCluster:
			v.CacheCluster, err = parseCacheCluster(val)
		default:
			if !IsKubernetesKey(k) {
				unknown = append(unknown, k)
			}
		}
		if err != nil {
			return Context{}, err
		}
	}
	if len(unknown) > 0 {
		return Context{}, paramErr(unknown[0], "unknown parameter (unknown: %s; known: %s)",
			strings.Join(unknown, ", "), strings.Join(knownKeys, ", "))
	}
	if _, ok := m[KeyBucket]; !ok {
		return Context{}, paramErr(KeyBucket, "required")
	}
	if ep, ok := m[KeyEndpoint]; ok {
		_, insecureSet := m[KeyInsecure]
		host, insecure, err := parseEndpoint(ep, v.Insecure, insecureSet)
		if err != nil {
			return Context{}, err
		}
		v.Endpoint, v.Insecure = host, insecure
	}
	return v, nil
}

var knownKeys = []string{KeyBucket, KeyPrefix, KeyEndpoint, KeyRegion, KeyPathStyle, KeyInsecure,
	KeyUID, KeyGID, KeyFileMode, KeyDirMode, KeyMetadataTTL, KeyCacheCluster}

// Map returns the volume context as a CSI map: only the keys that are set,
// each in the canonical spelling ParseContext reads back to v.
func (v Context) Map() map[string]string {
	m := map[string]string{KeyBucket: v.Bucket}
	set := func(k, val string) {
		if val != "" {
			m[k] = val
		}
	}
	set(KeyPrefix, strings.TrimSuffix(v.Prefix, "/"))
	set(KeyEndpoint, v.Endpoint)
	set(KeyRegion, v.Region)
	if v.PathStyle {
		m[KeyPathStyle] = "true"
	}
	if v.Insecure {
		m[KeyInsecure] = "true"
	}
	if v.UID != nil {
		m[KeyUID] = strconv.FormatUint(uint64(*v.UID), 10)
	}
	if v.GID != nil {
		m[KeyGID] = strconv.FormatUint(uint64(*v.GID), 10)
	}
	if v.FileMode != 0 {
		m[KeyFileMode] = fmt.Sprintf("%04o", uint32(v.FileMode))
	}
	if v.DirMode != 0 {
		m[KeyDirMode] = fmt.Sprintf("%04o", uint32(v.DirMode))
	}
	if v.MetadataTTL != nil {
		m[KeyMetadataTTL] = v.MetadataTTL.String()
	}
	set(KeyCacheCluster, v.CacheCluster)
	return m
}

// Location returns the bucket and prefix the volume shows, as ufs names them.
func (v Context) Location() ufs.Location {
	return ufs.Location{Scheme: "s3", Bucket: v.Bucket, Prefix: v.Prefix}
}

// S3Config returns how to reach the bucket, without credentials.
func (v Context) S3Config() ufs.S3Config {
	return ufs.S3Config{Endpoint: v.Endpoint, Region: v.Region, PathStyle: v.PathStyle, Insecure: v.Insecure}
}

func parseBucket(s string) (string, error) {
	if err := s3utils.CheckValidBucketName(s); err != nil {
		return "", paramErr(KeyBucket, "%q is not a valid S3 bucket name: %v", s, err)
	}
	return s, nil
}

// ParsePrefix checks a key prefix given as the value of key: no leading "/",
// no empty, "." or ".." segment, no control characters, valid UTF-8, at most
// MaxPrefixLen bytes. One trailing "/" is allowed. It returns "" or the
// prefix with a trailing "/".
func ParsePrefix(key, s string) (string, error) {
	const want = `want a key prefix such as "datasets/imagenet": no leading "/", no empty, "." or ".." segment`
	p := strings.TrimSuffix(s, "/")
	switch {
	case s == "":
		return "", nil
	case s == "/":
		return "", paramErr(key, "%q: %s; leave it out for the whole bucket", s, want)
	case len(s) > MaxPrefixLen:
		return "", paramErr(key, "longer than %d bytes", MaxPrefixLen)
	case !utf8.ValidString(s):
		return "", paramErr(key, "not valid UTF-8")
	case strings.HasPrefix(s, "/"):
		return "", paramErr(key, "%q starts with \"/\"; %s", s, want)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", paramErr(key, "%q contains a control character; %s", s, want)
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", paramErr(key, "%q has an empty, \".\" or \"..\" segment; %s", s, want)
		}
	}
	return p + "/", nil
}

// parseEndpoint normalises an endpoint to host[:port] and says whether it is
// plain http. An http:// or https:// scheme decides that by itself, and an
// insecure parameter that contradicts it is an error.
func parseEndpoint(s string, insecure, insecureSet bool) (string, bool, error) {
	const want = "want host[:port] or http(s)://host[:port] without a path"
	if len(s) > maxEndpointLen {
		return "", false, paramErr(KeyEndpoint, "longer than %d bytes", maxEndpointLen)
	}
	if s == "" {
		return "", insecure, nil
	}
	host := s
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", false, paramErr(KeyEndpoint, "not a URL; %s", want)
		}
		if u.User != nil {
			return "", false, paramErr(KeyEndpoint, "%s: credentials do not belong in the endpoint; put them in the provisioner and node-stage Secret", u.Redacted())
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", false, paramErr(KeyEndpoint, "%s: scheme must be http or https", u.Redacted())
		}
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return "", false, paramErr(KeyEndpoint, "%s: %s", u.Redacted(), want)
		}
		plain := u.Scheme == "http"
		if insecureSet && insecure != plain {
			return "", false, paramErr(KeyInsecure, "%q contradicts the %s:// scheme of endpoint %s", strconv.FormatBool(insecure), u.Scheme, u.Host)
		}
		host, insecure = u.Host, plain
	}
	if err := checkHostPort(host); err != nil {
		return "", false, paramErr(KeyEndpoint, "%q: %v; %s", host, err, want)
	}
	return host, insecure, nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// checkHostPort accepts a hostname, an IPv4 address or a bracketed IPv6
// address, with an optional port.
func checkHostPort(hp string) error {
	host := hp
	if strings.HasPrefix(hp, "[") || strings.Count(hp, ":") == 1 {
		h, port, err := net.SplitHostPort(hp)
		if err != nil {
			if strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]") {
				h, port = hp[1:len(hp)-1], ""
			} else {
				return errors.New("malformed host:port")
			}
		}
		if port != "" {
			if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
				return fmt.Errorf("port %q is not a number from 1 to 65535", port)
			}
		}
		if strings.HasPrefix(hp, "[") {
			if ip := net.ParseIP(h); ip == nil || ip.To4() != nil {
				return errors.New("not an IPv6 address in brackets")
			}
			return nil
		}
		host = h
	}
	if !hostnameRE.MatchString(host) {
		return errors.New("not a host name or IP address")
	}
	return nil
}

var regionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func parseRegion(s string) (string, error) {
	if !regionRE.MatchString(s) {
		return "", paramErr(KeyRegion, "%q: want a region name such as us-east-1 (letters, digits, '.', '_', '-'; at most 64)", s)
	}
	return s, nil
}

func parseBool(key, s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, paramErr(key, "%q: want \"true\" or \"false\"", s)
}

func parseID(key, s string) (*uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return nil, paramErr(key, "%q: want a numeric ID from 0 to 4294967294", s)
	}
	id := uint32(n)
	return &id, nil
}

func parseMode(key, s string) (fs.FileMode, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || n > 0o777 || n == 0 || digits == "" {
		return 0, paramErr(key, "%q: want octal permission bits from 0001 to 0777, such as 0444", s)
	}
	return fs.FileMode(n), nil
}

func parseTTL(s string) (*time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return nil, paramErr(KeyMetadataTTL, "%q: want a duration of at least 0, such as 10m or 1h30m (0s caches nothing)", s)
	}
	return &d, nil
}

var clusterRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$`)

func parseCacheCluster(s string) (string, error) {
	if !clusterRE.MatchString(s) {
		return "", paramErr(KeyCacheCluster, "%q: want the name of a cache cluster (as `hoard worker --cluster`): letters, digits, '.', '_', '-', at most 63", s)
	}
	return s, nil
}
