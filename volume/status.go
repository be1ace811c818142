package volume

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/cachecore/ufs"
)

// BucketStatus turns an error from a bucket (ufs.Probe, a listing, a
// deletion) into the gRPC status a CSI call returns: the one mapping the
// controller and the node share. what says what was being done, e.g.
// "checking bucket data". The message is ufs's, which never holds a secret.
//
//	ufs.ErrNoSuchBucket      NOT_FOUND          the bucket does not exist
//	ufs.ErrUnauthenticated   UNAUTHENTICATED    the store does not accept the credentials
//	ufs.ErrAccessDenied      PERMISSION_DENIED  the credentials may not do it
//	ufs.ErrUnavailable       UNAVAILABLE        unreachable, or failing (5xx): retry
//	context deadline         DEADLINE_EXCEEDED
//	context canceled         CANCELLED
//	anything else            INTERNAL
func BucketStatus(what string, err error) error {
	code, hint := bucketCode(err)
	if hint != "" {
		return status.Errorf(code, "%s: %s: %v", what, hint, err)
	}
	return status.Errorf(code, "%s: %v", what, err)
}

func bucketCode(err error) (codes.Code, string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded, ""
	case errors.Is(err, context.Canceled):
		return codes.Canceled, ""
	case errors.Is(err, ufs.ErrNoSuchBucket):
		return codes.NotFound, "the bucket does not exist (check bucket and endpoint, or create it first)"
	case errors.Is(err, ufs.ErrUnauthenticated):
		return codes.Unauthenticated, "the store does not accept the credentials (check the Secret's " +
			SecretAccessKeyID + ", " + SecretSecretAccessKey + " and " + SecretSessionToken + ")"
	case errors.Is(err, ufs.ErrAccessDenied):
		return codes.PermissionDenied, "access denied (the credentials, or without a Secret the pod's own identity, may not do this)"
	case errors.Is(err, ufs.ErrUnavailable):
		return codes.Unavailable, ""
	}
	return codes.Internal, ""
}
