package controller

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/cachecore/objid"
	"hoard.dev/hoard/cachecore/ufs"
	"hoard.dev/hoard/volume"
)

// withCredentials returns cfg with the credentials from a request's secrets
// (volume.ParseSecrets). No secrets means the ambient chain (environment, pod
// identity, instance role).
func withCredentials(cfg ufs.S3Config, secrets map[string]string) (ufs.S3Config, error) {
	c, err := volume.ParseSecrets(secrets)
	if err != nil {
		return ufs.S3Config{}, err
	}
	if c != nil {
		cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = c.AccessKeyID, c.SecretAccessKey, c.SessionToken
	}
	return cfg, nil
}

// Bucket is what the controller does with a bucket: one listing to check
// it, and deleting a volume's prefix.
type Bucket interface {
	ufs.Lister
	ufs.Deleter
	Source() objid.Source
}

// openBucket returns the S3 bucket name as cfg reaches it, or what
// Config.OpenBucket returns.
func (c *Controller) openBucket(ctx context.Context, name string, cfg ufs.S3Config) (Bucket, error) {
	cfg.CABundle = c.cfg.CABundle
	if c.cfg.OpenBucket != nil {
		return c.cfg.OpenBucket(ctx, name, cfg)
	}
	s, err := ufs.NewS3(ctx, name, cfg)
	if err != nil {
		// The parameters were checked; what is left is the CA bundle.
		return nil, status.Errorf(codes.FailedPrecondition, "opening bucket %q: %v", name, err)
	}
	return s, nil
}

func sourceOf(b Bucket, prefix string) string { return fmt.Sprintf("%s/%s", b.Source(), prefix) }
