package objid

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Schemes of a Source.
const (
	SchemeS3HTTPS = "s3+https" // an S3 endpoint reached over TLS
	SchemeS3HTTP  = "s3+http"  // an S3 endpoint reached over plain HTTP
	SchemeFile    = "file"     // a local directory
)

// maxSourceLen bounds a source name's text form.
const maxSourceLen = 1024

// Source names a bucket: how and where it is reached, and which one. It is
// comparable (use it as a map key) and never holds credentials. It is not a
// user's URI: s3://bucket/prefix/ is parsed by ufs.ParseSource.
type Source struct {
	Scheme   string // SchemeS3HTTPS, SchemeS3HTTP or SchemeFile
	Endpoint string // S3: host[:port]; file: empty
	Bucket   string // S3: the bucket; file: the absolute, clean directory
}

// S3 returns the source of bucket at endpoint (host[:port]), over TLS if secure.
func S3(endpoint string, secure bool, bucket string) Source {
	scheme := SchemeS3HTTP
	if secure {
		scheme = SchemeS3HTTPS
	}
	return Source{Scheme: scheme, Endpoint: endpoint, Bucket: bucket}
}

// File returns the source of the local directory dir (absolute, clean).
func File(dir string) Source { return Source{Scheme: SchemeFile, Bucket: dir} }

// IsS3 reports whether s is an S3 bucket.
func (s Source) IsS3() bool { return s.Scheme == SchemeS3HTTPS || s.Scheme == SchemeS3HTTP }

// Secure reports whether s is reached over TLS.
func (s Source) Secure() bool { return s.Scheme == SchemeS3HTTPS }

// IsZero reports whether s is the zero Source.
func (s Source) IsZero() bool { return s == Source{} }

// EndpointURL is the S3 endpoint as a URL (https://host:port), "" for file sources.
func (s Source) EndpointURL() string {
	switch s.Scheme {
	case SchemeS3HTTPS:
		return "https://" + s.Endpoint
	case SchemeS3HTTP:
		return "http://" + s.Endpoint
	}
	return ""
}

// String is the source's text form: "s3+https://host:port/bucket",
// "s3+http://host:port/bucket" or "file:///abs/dir".
func (s Source) String() string {
	if s.Scheme == SchemeFile {
		return "file://" + s.Bucket
	}
	return s.Scheme + "://" + s.Endpoint + "/" + s.Bucket
}

// Validate reports a source that String and ParseSource would not round-trip.
func (s Source) Validate() error {
	switch s.Scheme {
	case SchemeS3HTTPS, SchemeS3HTTP:
		if err := checkEndpoint(s.Endpoint); err != nil {
			return err
		}
		if s.Bucket == "" || len(s.Bucket) > 255 || strings.ContainsAny(s.Bucket, "/?#@\\%") || hasControl(s.Bucket) {
			return fmt.Errorf("bucket %q: want a bucket name", s.Bucket)
		}
	case SchemeFile:
		if s.Endpoint != "" {
			return errors.New("a file source has no endpoint")
		}
		if !strings.HasPrefix(s.Bucket, "/") || path.Clean(s.Bucket) != s.Bucket || hasControl(s.Bucket) {
			return fmt.Errorf("directory %q: want an absolute, clean path", s.Bucket)
		}
	case "":
		return errors.New("no scheme")
	default:
		return fmt.Errorf("scheme %q: want %s, %s or %s", s.Scheme, SchemeS3HTTPS, SchemeS3HTTP, SchemeFile)
	}
	if len(s.String()) > maxSourceLen {
		return fmt.Errorf("longer than %d bytes", maxSourceLen)
	}
	return nil
}

func checkEndpoint(ep string) error {
	if ep == "" || len(ep) > 255 || strings.ContainsAny(ep, "/?#@\\% ") || hasControl(ep) {
		return fmt.Errorf("endpoint %q: want host[:port]", ep)
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// ParseSource parses the text form String makes, and nothing else: the result's
// String is name.
func ParseSource(name string) (Source, error) {
	if len(name) > maxSourceLen {
		return Source{}, fmt.Errorf("source name longer than %d bytes", maxSourceLen)
	}
	scheme, rest, ok := strings.Cut(name, "://")
	if !ok {
		return Source{}, fmt.Errorf("source %q: want s3+https://host:port/bucket, s3+http://host:port/bucket or file:///dir", name)
	}
	var s Source
	if scheme == SchemeFile {
		s = File(rest)
	} else {
		ep, bucket, _ := strings.Cut(rest, "/")
		s = Source{Scheme: scheme, Endpoint: ep, Bucket: bucket}
	}
	if err := s.Validate(); err != nil {
		return Source{}, fmt.Errorf("source %q: %w", name, err)
	}
	if s.String() != name {
		return Source{}, fmt.Errorf("source %q: not in canonical form (%s)", name, s)
	}
	return s, nil
}
