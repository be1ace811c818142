package sources

import (
	"fmt"
	"strings"

	"hoard.dev/hoard/cachecore/objid"
)

// Pattern matches source names: SCHEME://HOST[:PORT]/BUCKET, where HOST[:PORT]
// or BUCKET may be "*" (any), for example s3+https://s3.us-east-1.amazonaws.com/*
// or s3+http://10.0.0.5:9000/datasets. "*" alone matches every S3 source.
type Pattern struct {
	scheme, endpoint, bucket string
}

// ParsePattern parses a Pattern.
func ParsePattern(s string) (Pattern, error) {
	if s == "*" {
		return Pattern{"*", "*", "*"}, nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	ep, bucket, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || (scheme != objid.SchemeS3HTTPS && scheme != objid.SchemeS3HTTP) || ep == "" || bucket == "" || strings.Contains(bucket, "/") {
		return Pattern{}, fmt.Errorf("source pattern %q: want s3+https://HOST[:PORT]/BUCKET or s3+http://..., with * for any host or bucket", s)
	}
	return Pattern{scheme, ep, bucket}, nil
}

// ParsePatterns parses each of ss.
func ParsePatterns(ss []string) ([]Pattern, error) {
	out := make([]Pattern, 0, len(ss))
	for _, s := range ss {
		p, err := ParsePattern(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Match reports whether src matches p.
func (p Pattern) Match(src objid.Source) bool {
	return src.IsS3() && (p.scheme == "*" || p.scheme == src.Scheme) &&
		(p.endpoint == "*" || p.endpoint == src.Endpoint) && (p.bucket == "*" || p.bucket == src.Bucket)
}

func (p Pattern) String() string {
	if p.scheme == "*" {
		return "*"
	}
	return p.scheme + "://" + p.endpoint + "/" + p.bucket
}

func matchAny(ps []Pattern, src objid.Source) bool {
	for _, p := range ps {
		if p.Match(src) {
			return true
		}
	}
	return false
}

// Policy says which S3 sources a worker opens on request. Nothing outside
// Allow is ever opened (no request can make the worker connect elsewhere);
// a request without the tenant's credentials is read with the worker's own
// identity only for sources in Own.
type Policy struct {
	Allow []Pattern
	Own   []Pattern
}
