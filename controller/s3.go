package controller

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/minio/minio-go/v7"
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

// bucket is what the controller does with a bucket.
type bucket interface {
	ufs.Lister
	ufs.Deleter
	Source() objid.Source
}

// openBucket returns the S3 bucket name as cfg reaches it.
func (c *Controller) openBucket(ctx context.Context, name string, cfg ufs.S3Config) (bucket, error) {
	cfg.CABundle = c.cfg.CABundle
	s, err := ufs.NewS3(ctx, name, cfg)
	if err != nil {
		// The parameters were checked; what is left is the CA bundle.
		return nil, status.Errorf(codes.FailedPrecondition, "opening bucket %q: %v", name, err)
	}
	return s, nil
}

// bucketStatus turns an error from the bucket into a gRPC status: missing
// bucket FAILED_PRECONDITION, credentials that do not authenticate
// UNAUTHENTICATED, an identity without permission PERMISSION_DENIED, a store
// that cannot be reached or fails UNAVAILABLE, a context that ran out
// DEADLINE_EXCEEDED or CANCELLED. The message is ufs's, which never contains
// a secret.
func bucketStatus(what string, err error) error {
	var resp minio.ErrorResponse
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", what, err)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: %v", what, err)
	case errors.Is(err, ufs.ErrNoSuchBucket):
		return status.Errorf(codes.FailedPrecondition, "%s: the bucket does not exist (create it first): %v", what, err)
	case errors.Is(err, ufs.ErrAccessDenied) && errors.As(err, &resp) && authFailure(resp.Code):
		return status.Errorf(codes.Unauthenticated, "%s: the store does not accept the credentials: %v", what, err)
	case errors.Is(err, ufs.ErrAccessDenied):
		return status.Errorf(codes.PermissionDenied, "%s: access denied: %v", what, err)
	case errors.As(err, &netErr), errors.As(err, &resp) && resp.StatusCode >= 500:
		return status.Errorf(codes.Unavailable, "%s: %v", what, err)
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// authFailure tells S3 error codes that mean "who are you?" from those that
// mean "you may not".
func authFailure(code string) bool {
	switch code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "InvalidTokenId", "TokenRefreshRequired":
		return true
	}
	return false
}

func sourceOf(b bucket, prefix string) string { return fmt.Sprintf("%s/%s", b.Source(), prefix) }
