package ufs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"hoard.dev/hoard/cachecore/objid"
)

// S3Config says how to reach an S3-compatible store. Its String, GoString and
// LogValue never show SecretKey or SessionToken; marshalling it by other means
// (encoding/json, gob) does, so do not.
type S3Config struct {
	// Endpoint is host[:port] or a URL (http://host:port, https://host). Empty
	// means Amazon S3.
	Endpoint string
	// Region of the bucket. Empty asks the store once per bucket (one extra
	// GET ?location request).
	Region string
	// Static credentials. If AccessKey is empty the ambient chain is used:
	// AWS_* and MINIO_* environment variables, ~/.aws/credentials, then IAM
	// (IRSA web identity token, EKS pod identity, ECS task role, EC2 instance
	// role); with none of them requests are anonymous.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// PathStyle forces path-style requests (http://host/bucket/key); otherwise
	// minio-go picks (virtual-host style for AWS, path style for IPs and
	// most other endpoints).
	PathStyle bool
	// Insecure uses plain HTTP when Endpoint has no scheme.
	Insecure bool
	// CABundle is a PEM file of CA certificates to trust in addition to the
	// system roots. Empty means $AWS_CA_BUNDLE (if set).
	CABundle string
}

const redacted = "<redacted>"

// String describes c without secrets: the access key shows only its last four
// characters, the secret key and session token only whether they are set.
func (c S3Config) String() string {
	return fmt.Sprintf("S3Config{Endpoint:%q Region:%q AccessKey:%q SecretKey:%q SessionToken:%q PathStyle:%t Insecure:%t CABundle:%q}",
		c.Endpoint, c.Region, maskKey(c.AccessKey), hideSecret(c.SecretKey), hideSecret(c.SessionToken),
		c.PathStyle, c.Insecure, c.CABundle)
}

// GoString is String, so that %#v redacts too.
func (c S3Config) GoString() string { return c.String() }

// LogValue implements slog.LogValuer without secrets.
func (c S3Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("region", c.Region),
		slog.String("access_key", maskKey(c.AccessKey)),
		slog.String("secret_key", hideSecret(c.SecretKey)),
		slog.String("session_token", hideSecret(c.SessionToken)),
		slog.Bool("path_style", c.PathStyle),
		slog.Bool("insecure", c.Insecure),
		slog.String("ca_bundle", c.CABundle),
	)
}

// maskKey keeps the last four characters of an access key, the way
// `aws configure list` shows it.
func maskKey(k string) string {
	if len(k) <= 4 {
		return strings.Repeat("*", len(k))
	}
	return strings.Repeat("*", len(k)-4) + k[len(k)-4:]
}

func hideSecret(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// S3 is the backend for Amazon S3 and S3-compatible stores. It is safe for
// concurrent use; each call is one request (plus, once per bucket, a region
// lookup if S3Config.Region is empty).
type S3 struct {
	core   *minio.Core
	bucket string
	tr     *http.Transport
	id     objid.Source
	source string // id as text, for messages
}

var (
	_ Stater      = (*S3)(nil)
	_ Lister      = (*S3)(nil)
	_ RangeReader = (*S3)(nil)
	_ UFS         = (*S3)(nil)
)

// NewS3 returns the backend for bucket. It makes no request (the context is
// for setups that will need one, such as assuming a role): a missing bucket or
// wrong credentials show up as ErrNoSuchBucket or ErrAccessDenied on the first
// call.
func NewS3(_ context.Context, bucket string, cfg S3Config) (*S3, error) {
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return nil, fmt.Errorf("s3 bucket %q: %w", bucket, err)
	}
	host, secure, err := parseEndpoint(cfg)
	if err != nil {
		return nil, err
	}
	tr, err := newTransport(secure, cfg.CABundle)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	core, err := minio.NewCore(host, &minio.Options{
		Creds:        newCredentials(cfg, tr),
		Secure:       secure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookup,
		// Fail in about a second when the store is down instead of ten
		// retries over several seconds: callers have their own fallbacks.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", host, err)
	}
	id := objid.S3(host, secure, bucket)
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("s3 source: %w", err)
	}
	return &S3{core: core, bucket: bucket, tr: tr, id: id, source: id.String()}, nil
}

// parseEndpoint returns host[:port] and whether to use TLS.
func parseEndpoint(cfg S3Config) (host string, secure bool, err error) {
	ep := cfg.Endpoint
	switch {
	case ep == "":
		return "s3.amazonaws.com", !cfg.Insecure, nil
	case strings.Contains(ep, "://"):
		u, err := url.Parse(ep)
		if err != nil {
			return "", false, fmt.Errorf("s3 endpoint %s: %w", redactURI(ep), err)
		}
		if u.User != nil {
			return "", false, fmt.Errorf("s3 endpoint %s: credentials do not belong in the endpoint", u.Redacted())
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", false, fmt.Errorf("s3 endpoint %s: scheme must be http or https", u.Redacted())
		}
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return "", false, fmt.Errorf("s3 endpoint %s: want host[:port] or http(s)://host[:port] without a path", u.Redacted())
		}
		return u.Host, u.Scheme == "https", nil
	case strings.ContainsAny(ep, "/@?#"):
		return "", false, fmt.Errorf("s3 endpoint %s: want host[:port] or http(s)://host[:port]", redactURI(ep))
	default:
		return ep, !cfg.Insecure, nil
	}
}

// newTransport is tuned for many parallel range GETs to one host: a deep idle
// pool, no transparent gzip (object bytes must arrive as stored), large read
// buffers, HTTP/1.1 (one request per connection streams fastest).
func newTransport(secure bool, caBundle string) (*http.Transport, error) {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        256 << 10,
	}
	if !secure {
		return tr, nil
	}
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caBundle == "" {
		caBundle = os.Getenv("AWS_CA_BUNDLE")
	}
	if caBundle != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(caBundle)
		if err != nil {
			return nil, fmt.Errorf("s3 CA bundle: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("s3 CA bundle %s: no PEM certificates in it", caBundle)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}

// newCredentials returns static credentials if cfg has keys, else the ambient
// chain.
func newCredentials(cfg S3Config, tr *http.Transport) *credentials.Credentials {
	if cfg.AccessKey != "" {
		return credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.EnvMinio{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{Client: &http.Client{Transport: tr, Timeout: 10 * time.Second}},
	})
}

// Close releases the backend's idle connections. Calls after Close still
// work (they open new connections).
func (s *S3) Close() error {
	s.tr.CloseIdleConnections()
	return nil
}

// Source returns the bucket's name, s3+https://host[:port]/bucket (or s3+http).
func (s *S3) Source() objid.Source { return s.id }

// String returns Source as text, so that printing an *S3 shows no internals.
func (s *S3) String() string { return s.source }

func (s *S3) where(key string) string { return s.source + "/" + key }

// Stat issues a HEAD request for key. A HEAD response has no body, so Amazon
// S3 cannot say whether the key or the bucket is missing: both are ErrNotFound
// there (MinIO says which in a header, so a missing bucket is ErrNoSuchBucket).
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	if key == "" {
		return Object{}, fmt.Errorf("stat %s: %w: empty key", s.where(key), ErrInvalidKey)
	}
	info, err := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Object{}, s3Error("stat", s.where(key), err)
	}
	return Object{Key: key, Size: info.Size, Version: trimETag(info.ETag), ModTime: info.LastModified}, nil
}

// List issues one ListObjectsV2 request.
//
// It asks for one entry more than MaxKeys (up to S3's 1000) and cuts the page
// itself: MinIO sometimes reports a short page as complete when the listing
// continues (seen with max-keys 1 and a "dir/" marker object, and when
// start-after is a common prefix).
//
// minio-go's Core.ListObjectsV2 takes no context; List returns when ctx is done
// and leaves the request to finish (bounded by the transport's timeouts) in the
// background.
func (s *S3) List(ctx context.Context, opt ListOptions) (ListPage, error) {
	maxKeys := opt.MaxKeys
	if maxKeys <= 0 || maxKeys > 1000 {
		maxKeys = 1000
	}
	where := s.where(opt.Prefix)
	if err := ctx.Err(); err != nil {
		return ListPage{}, fmt.Errorf("list %s: %w", where, err)
	}
	startAfter := opt.StartAfter
	if isCommonPrefix(startAfter, opt) {
		// StartAfter is a common prefix from the previous page. The keys under
		// it sort after it and would roll up into it again: start after all
		// of them. (U+10FFFF is the greatest code point; a key would need it
		// right after the prefix to be missed.) S3 and MinIO skip them anyway,
		// but MinIO then counts the skipped prefix against max-keys.
		startAfter += string(rune(utf8.MaxRune))
	}
	type result struct {
		res minio.ListBucketV2Result
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := s.core.ListObjectsV2(s.bucket, opt.Prefix, startAfter, "", opt.Delimiter, min(maxKeys+1, 1000))
		ch <- result{res, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		return ListPage{}, fmt.Errorf("list %s: %w", where, ctx.Err())
	}
	if r.err != nil {
		return ListPage{}, s3Error("list", where, r.err)
	}
	return s3Page(r.res, opt.StartAfter, maxKeys, where)
}

// s3Page merges the keys and common prefixes of one response (each sorted) in
// key order, keeps the first maxKeys after startAfter and sets Next if more
// follow.
func s3Page(res minio.ListBucketV2Result, startAfter string, maxKeys int, where string) (ListPage, error) {
	var page ListPage
	objs, prefs := res.Contents, res.CommonPrefixes
	n, last := 0, ""
	for len(objs) > 0 || len(prefs) > 0 {
		takeObj := len(prefs) == 0 || (len(objs) > 0 && objs[0].Key < prefs[0].Prefix)
		key := ""
		if takeObj {
			key = objs[0].Key
		} else {
			key = prefs[0].Prefix
		}
		if key > startAfter {
			if n == maxKeys {
				page.Next = last
				return page, nil
			}
			if takeObj {
				o := objs[0]
				page.Objects = append(page.Objects, Object{Key: o.Key, Size: o.Size, Version: trimETag(o.ETag), ModTime: o.LastModified})
			} else {
				page.Prefixes = append(page.Prefixes, key)
			}
			n, last = n+1, key
		}
		if takeObj {
			objs = objs[1:]
		} else {
			prefs = prefs[1:]
		}
	}
	if res.IsTruncated {
		if last == "" {
			return ListPage{}, fmt.Errorf("list %s: store says truncated but returned nothing new", where)
		}
		page.Next = last
	}
	return page, nil
}

// ReadRange issues one GET with a Range and an If-Match header, so a changed
// object fails with 412 Precondition Failed instead of returning new bytes.
func (s *S3) ReadRange(ctx context.Context, key, version string, off, n int64) (io.ReadCloser, error) {
	where := s.where(key)
	switch {
	case key == "":
		return nil, fmt.Errorf("read %s: %w: empty key", where, ErrInvalidKey)
	case version == "":
		return nil, fmt.Errorf("read %s: empty version", where)
	case off < 0 || n < 0:
		return nil, fmt.Errorf("read %s: invalid range off=%d n=%d", where, off, n)
	case n == 0:
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetMatchETag(version); err != nil {
		return nil, fmt.Errorf("read %s: %w", where, err)
	}
	if err := opts.SetRange(off, off+n-1); err != nil {
		return nil, fmt.Errorf("read %s: %w", where, err)
	}
	body, info, hdr, err := s.core.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		var resp minio.ErrorResponse
		if errors.As(err, &resp) && resp.Code == "InvalidRange" {
			// off is at or beyond the end. S3 checks If-Match before Range,
			// so the version still matched.
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, s3Error(fmt.Sprintf("read [%d,+%d) of", off, n), where, err)
	}
	// Belt and braces for stores that ignore If-Match or Range.
	if got := trimETag(info.ETag); got != version {
		body.Close()
		return nil, fmt.Errorf("read %s: %w: want version %s, store sent %s", where, ErrVersionMismatch, version, got)
	}
	cr := hdr.Get("Content-Range")
	if cr == "" && off > 0 {
		body.Close()
		return nil, fmt.Errorf("read %s: store ignored the Range header", where)
	}
	total := info.Size // no Content-Range: the whole object came
	if cr != "" {
		if total, err = contentRangeTotal(cr, off); err != nil {
			body.Close()
			return nil, fmt.Errorf("read %s: %w", where, err)
		}
	}
	return readCloser{io.LimitReader(body, n), body, total}, nil
}

// contentRangeTotal checks that "bytes first-last/total" starts at off and
// returns total (-1 if the store sent "*").
func contentRangeTotal(cr string, off int64) (int64, error) {
	rng, total, ok := strings.Cut(strings.TrimPrefix(cr, "bytes "), "/")
	first, _, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 || !strings.HasPrefix(cr, "bytes ") || first != strconv.FormatInt(off, 10) {
		return 0, fmt.Errorf("asked for bytes from %d, store sent Content-Range %q", off, cr)
	}
	if total == "*" {
		return -1, nil
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("store sent Content-Range %q: bad total size", cr)
	}
	return n, nil
}

type readCloser struct {
	io.Reader
	io.Closer
	size int64 // the whole object's, as the store said; -1 if unknown
}

// ObjectSize implements Sized.
func (r readCloser) ObjectSize() int64 { return r.size }

// isCommonPrefix tells whether StartAfter names a common prefix (rather than a
// key) of a delimited listing: it ends with the delimiter and is longer than
// the listed prefix (a key equal to the prefix is listed as an object).
func isCommonPrefix(startAfter string, opt ListOptions) bool {
	return opt.Delimiter != "" && strings.HasSuffix(startAfter, opt.Delimiter) &&
		len(startAfter) > len(opt.Prefix) && strings.HasPrefix(startAfter, opt.Prefix)
}

// trimETag strips the quotes S3 puts around ETags.
func trimETag(etag string) string { return strings.Trim(etag, `"`) }

// s3Error wraps err from minio-go with what was done and, if it is one, the
// matching sentinel.
func s3Error(op, where string, err error) error {
	var netErr net.Error
	if errors.As(err, &netErr) && s3Sentinel(err) == nil {
		return fmt.Errorf("%s %s: %w: %w", op, where, ErrUnavailable, err)
	}
	if sentinel := s3Sentinel(err); sentinel != nil {
		return fmt.Errorf("%s %s: %w: %w", op, where, sentinel, err)
	}
	return fmt.Errorf("%s %s: %w", op, where, err)
}

func s3Sentinel(err error) error {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return nil
	}
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		return ErrNotFound
	case "NoSuchBucket":
		return ErrNoSuchBucket
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidTokenId",
		"TokenRefreshRequired":
		return ErrUnauthenticated
	case "AccessDenied", "AllAccessDisabled", "AccountProblem":
		return ErrAccessDenied
	case "PreconditionFailed":
		return ErrVersionMismatch
	case "SlowDown", "ServiceUnavailable", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests":
		return ErrThrottled
	case "InternalError", "RequestTimeout":
		return ErrUnavailable
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return ErrNotFound
	case resp.StatusCode == http.StatusForbidden:
		return ErrAccessDenied
	case resp.StatusCode == http.StatusPreconditionFailed:
		return ErrVersionMismatch
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		return ErrThrottled
	case resp.StatusCode >= 500:
		return ErrUnavailable
	}
	return nil
}
