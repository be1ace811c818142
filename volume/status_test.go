package volume

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hoard.dev/hoard/cachecore/ufs"
)

func TestBucketStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("probe: list s3://h/b/p/: %w: NoSuchBucket", ufs.ErrNoSuchBucket), codes.NotFound},
		{fmt.Errorf("probe: list s3://h/b/p/: %w: AccessDenied", ufs.ErrAccessDenied), codes.PermissionDenied},
		{fmt.Errorf("probe: list s3://h/b/p/: %w: SignatureDoesNotMatch", ufs.ErrUnauthenticated), codes.Unauthenticated},
		{fmt.Errorf("probe: %w: dial tcp: connection refused", ufs.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("probe: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("probe: %w", context.Canceled), codes.Canceled},
		{errors.New("something else"), codes.Internal},
	} {
		err := BucketStatus("checking bucket b", tc.err)
		if got := status.Code(err); got != tc.want {
			t.Errorf("BucketStatus(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if !strings.HasPrefix(status.Convert(err).Message(), "checking bucket b: ") {
			t.Errorf("message %q does not say what was being done", status.Convert(err).Message())
		}
	}
}
