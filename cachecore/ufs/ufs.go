package ufs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"

	"hoard.dev/hoard/cachecore/objid"
)

// Object describes one version of one object in a bucket.
type Object struct {
	Key     string
	Size    int64
	Version string // S3: the ETag without quotes; Local: size, mtime and inode
	ModTime time.Time
	// Owner is the object's owner and permission bits where the backend has
	// them (file://); nil for S3, whose access is decided by credentials.
	Owner *Owner `json:",omitempty"`
}

// Owner is who owns a local file and its permission bits.
type Owner struct {
	UID, GID uint32
	Perm     fs.FileMode // permission bits only
}

// Stater reads the metadata of one object.
type Stater interface {
	// Stat returns the current version of key. A missing key (or, for Local, a
	// directory or a symlink that leads outside the root) is ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)
}

// ListOptions selects one page of a listing.
type ListOptions struct {
	Prefix string // only keys that start with Prefix
	// Delimiter "/" rolls keys up into common prefixes (a directory listing);
	// "" lists every key under Prefix (a recursive walk). Local supports only
	// these two.
	Delimiter string
	// StartAfter continues a listing: only keys and prefixes greater than it
	// are returned. Pass the Next of the previous page.
	StartAfter string
	MaxKeys    int // keys plus prefixes per page; <= 0 means 1000 (S3 caps it at 1000)
}

// ListPage is one page of a listing, sorted by key in byte order.
type ListPage struct {
	Objects  []Object
	Prefixes []string // common prefixes, each ending with the delimiter
	// Next is the greatest key or prefix of this page if more follow, "" when
	// the listing is complete. Pass it as ListOptions.StartAfter.
	Next string
}

// Lister lists a bucket one page at a time.
type Lister interface {
	List(ctx context.Context, opt ListOptions) (ListPage, error)
}

// RangeReader reads byte ranges of one version of an object.
type RangeReader interface {
	// ReadRange returns the bytes [off, off+n) of version of key, fewer if the
	// object ends first (none if off is at or beyond its end). It fails with
	// ErrVersionMismatch if the object is no longer that version, when called
	// or, if that is noticed only while reading, from Read; never with bytes of
	// another version. n == 0 returns an empty reader without any I/O. The
	// caller must Close the reader.
	ReadRange(ctx context.Context, key, version string, off, n int64) (io.ReadCloser, error)
}

// Sized is implemented by the readers ReadRange returns when the store said,
// with the read, how large the whole object is (S3's Content-Range, a file's
// size). Callers that must not trust a size from elsewhere check it with
// ObjectSize.
type Sized interface {
	ObjectSize() int64
}

// ObjectSize returns the object's size the store gave with the read r, if it did.
func ObjectSize(r io.Reader) (int64, bool) {
	if s, ok := r.(Sized); ok && s.ObjectSize() >= 0 {
		return s.ObjectSize(), true
	}
	return 0, false
}

// UFS is what every backend provides.
type UFS interface {
	Stater
	Lister
	RangeReader
	// Source names the bucket stably, for cache keys and logs, e.g.
	// s3+http://127.0.0.1:9000/bucket or file:///abs/dir. It never contains
	// credentials.
	Source() objid.Source
}

// Sentinel errors. Errors from this package wrap one of them (test with
// errors.Is) together with what was being done and the backend's own error.
var (
	ErrNotFound     = errors.New("not found")
	ErrNoSuchBucket = errors.New("no such bucket")
	// ErrAccessDenied: the store refused the request (any reason).
	ErrAccessDenied = errors.New("access denied")
	// ErrUnauthenticated: the store does not accept the credentials at all
	// (unknown access key, bad signature, expired token). It wraps
	// ErrAccessDenied, so errors.Is(err, ErrAccessDenied) holds for it too.
	ErrUnauthenticated = fmt.Errorf("%w: credentials not accepted", ErrAccessDenied)
	// ErrUnavailable: the store could not be reached, or failed (5xx,
	// throttling): worth a retry.
	ErrUnavailable = errors.New("store unavailable")
	// ErrThrottled: the store asks to slow down (503 SlowDown, 429): it
	// works, and will answer a retry after a backoff. It wraps
	// ErrUnavailable.
	ErrThrottled = fmt.Errorf("%w: throttled, slow down", ErrUnavailable)
	// ErrStalled: the store sent nothing for longer than the reader allows
	// (a hung store, or a link that lost its packets); the request was
	// given up. It wraps ErrUnavailable.
	ErrStalled         = fmt.Errorf("%w: it sent nothing", ErrUnavailable)
	ErrVersionMismatch = errors.New("object version changed")
	ErrInvalidKey      = errors.New("invalid key")
)

// Probe lists at most one key under prefix, so that a missing bucket,
// refused credentials or an unreachable store are found when a bucket is
// opened (a volume created or staged, a mount started) rather than at every
// read. Its error wraps exactly one of ErrNoSuchBucket, ErrUnauthenticated,
// ErrAccessDenied, ErrUnavailable, or ctx's error; anything else wraps
// nothing of this package. The caller bounds it with ctx.
func Probe(ctx context.Context, l Lister, prefix string) error {
	_, err := l.List(ctx, ListOptions{Prefix: prefix, Delimiter: "/", MaxKeys: 1})
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}

// Location is a parsed source URI.
type Location struct {
	Scheme string // "s3" or "file"
	// Bucket is the S3 bucket, or for file sources the absolute, cleaned
	// directory that plays the bucket's role.
	Bucket string
	// Prefix is the key prefix under the bucket ("" or ending with "/"); always
	// "" for file sources.
	Prefix string
}

// String returns the canonical URI of l.
func (l Location) String() string {
	switch l.Scheme {
	case "file":
		return (&url.URL{Scheme: "file", Path: l.Bucket}).String()
	default:
		u := url.URL{Scheme: l.Scheme, Host: l.Bucket}
		if l.Prefix != "" {
			u.Path = "/" + l.Prefix
		}
		return u.String()
	}
}

const sourceForms = "want s3://bucket, s3://bucket/prefix/ or file:///absolute/dir"

// ParseSource parses a source URI: s3://bucket, s3://bucket/some/prefix/ or
// file:///absolute/dir. An S3 prefix gets a trailing "/" if it lacks one (a
// mounted prefix is a directory). Credentials in the URI are refused, and error
// messages never repeat them.
func ParseSource(uri string) (Location, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Location{}, fmt.Errorf("parse source %s: not a URI (%s)", redactURI(uri), sourceForms)
	}
	shown := u.Redacted()
	if u.User != nil {
		return Location{}, fmt.Errorf("parse source %s: credentials do not belong in the source URI; pass them as secrets", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return Location{}, fmt.Errorf("parse source %s: query and fragment are not allowed (%s)", shown, sourceForms)
	}
	switch u.Scheme {
	case "s3":
		return parseS3(u, shown)
	case "file":
		return parseFile(u, shown)
	case "":
		return Location{}, fmt.Errorf("parse source %s: missing scheme (%s)", shown, sourceForms)
	default:
		return Location{}, fmt.Errorf("parse source %s: unsupported scheme %q (%s)", shown, u.Scheme, sourceForms)
	}
}

func parseS3(u *url.URL, shown string) (Location, error) {
	if u.Opaque != "" || u.Host == "" {
		return Location{}, fmt.Errorf("parse source %s: missing bucket (want s3://bucket or s3://bucket/prefix/)", shown)
	}
	if strings.Contains(u.Host, ":") {
		return Location{}, fmt.Errorf("parse source %s: bucket %q has a port; the endpoint belongs in the S3 configuration, not the source", shown, u.Host)
	}
	if err := s3utils.CheckValidBucketName(u.Host); err != nil {
		return Location{}, fmt.Errorf("parse source %s: bucket %q: %v", shown, u.Host, err)
	}
	prefix := strings.TrimPrefix(u.Path, "/")
	if prefix != "" {
		if !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		for seg := range strings.SplitSeq(strings.TrimSuffix(prefix, "/"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				return Location{}, fmt.Errorf("parse source %s: prefix %q has an empty, \".\" or \"..\" segment", shown, prefix)
			}
		}
	}
	return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
}

func parseFile(u *url.URL, shown string) (Location, error) {
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") {
		return Location{}, fmt.Errorf("parse source %s: a file source needs an absolute path (want file:///absolute/dir, three slashes)", shown)
	}
	return Location{Scheme: "file", Bucket: filepath.Clean(u.Path)}, nil
}

// redactURI hides anything that might be a password in a string that did not
// parse as a URI.
func redactURI(s string) string {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		return "<redacted>" + s[i:]
	}
	return fmt.Sprintf("%q", s)
}

// Open returns the backend for loc: S3 (configured by cfg) for s3 sources,
// Local for file sources. The prefix of loc is not applied; the caller joins it
// to the keys it asks for.
func Open(ctx context.Context, loc Location, cfg S3Config) (UFS, error) {
	switch loc.Scheme {
	case "s3":
		return NewS3(ctx, loc.Bucket, cfg)
	case "file":
		return NewLocal(loc.Bucket)
	default:
		return nil, fmt.Errorf("open %s: unsupported scheme %q (%s)", loc, loc.Scheme, sourceForms)
	}
}
