package sources

import (
	"context"
	"fmt"
	"sync"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
)

// Registry is a set of opened buckets. It is safe for concurrent use.
type Registry struct {
	s3     ufs.S3Config
	anyS3  bool
	mu     sync.Mutex
	opened map[objid.Source]ufs.UFS
}

// New returns an empty registry. With openS3 true, an S3 source that was not
// added is opened on first use with defaults (endpoint taken from the source
// name, credentials and options from defaults).
func New(defaults ufs.S3Config, openS3 bool) *Registry {
	return &Registry{s3: defaults, anyS3: openS3, opened: make(map[objid.Source]ufs.UFS)}
}

// Add makes u available under u.Source().
func (r *Registry) Add(u ufs.UFS) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opened[u.Source()] = u
}

// Open returns the bucket named source. An S3 source is reached with the
// scheme its name carries (s3+http or s3+https), whatever the defaults say.
func (r *Registry) Open(ctx context.Context, source objid.Source) (ufs.UFS, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u, ok := r.opened[source]; ok {
		return u, nil
	}
	if !r.anyS3 || !source.IsS3() {
		return nil, fmt.Errorf("source %s is not served here", source)
	}
	if err := source.Validate(); err != nil {
		return nil, fmt.Errorf("source %s: %w", source, err)
	}
	cfg := r.s3
	cfg.Endpoint = source.EndpointURL()
	u, err := ufs.NewS3(ctx, source.Bucket, cfg)
	if err != nil {
		return nil, fmt.Errorf("open source %s: %w", source, err)
	}
	r.opened[source] = u
	return u, nil
}
