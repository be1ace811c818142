package volume

import (
	"log/slog"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Keys of the credentials Secret: the provisioner Secret (CreateVolume,
// DeleteVolume), the node-stage Secret (NodeStageVolume) and the
// node-publish Secret of an inline volume (NodePublishVolume) share them.
//
//	apiVersion: v1
//	kind: Secret
//	metadata: {name: hoard-s3, namespace: hoard}
//	stringData:
//	  accessKeyID: AKIA...          # required if the Secret is used
//	  secretAccessKey: ...          # required if the Secret is used
//	  sessionToken: ...             # optional: temporary credentials
const (
	SecretAccessKeyID     = "accessKeyID"
	SecretSecretAccessKey = "secretAccessKey"
	SecretSessionToken    = "sessionToken"
)

// Credentials are static S3 credentials from a Secret. String, GoString and
// LogValue show the access key's last four characters and nothing else.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// String shows the access key's last four characters and nothing else.
func (c *Credentials) String() string {
	if c == nil {
		return "ambient"
	}
	k := c.AccessKeyID
	if len(k) > 4 {
		k = k[len(k)-4:]
	} else {
		k = ""
	}
	return "Credentials{AccessKeyID:****" + k + " SecretAccessKey:<redacted>}"
}

// GoString is String, so that %#v redacts too.
func (c *Credentials) GoString() string { return c.String() }

// LogValue is String.
func (c *Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// ParseSecrets reads the credentials of a CSI request's secrets. No secrets
// give nil: the caller decides whether an ambient identity may stand in
// (the controller's and a staged volume's may; an inline volume's may not).
// With secrets, accessKeyID and secretAccessKey are required; other keys are
// ignored (a Secret may serve other consumers too). Errors are
// INVALID_ARGUMENT and name keys, never values.
func ParseSecrets(secrets map[string]string) (*Credentials, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	for _, k := range []string{SecretAccessKeyID, SecretSecretAccessKey} {
		if secrets[k] == "" {
			return nil, status.Errorf(codes.InvalidArgument,
				"secrets: %q is missing or empty (the Secret has keys %s; it needs %s and %s, and %s for temporary credentials)",
				k, strings.Join(slices.Sorted(maps.Keys(secrets)), ", "),
				SecretAccessKeyID, SecretSecretAccessKey, SecretSessionToken)
		}
	}
	return &Credentials{
		AccessKeyID:     secrets[SecretAccessKeyID],
		SecretAccessKey: secrets[SecretSecretAccessKey],
		SessionToken:    secrets[SecretSessionToken],
	}, nil
}
